#!/bin/bash
# shim_stdio_unread.sh: a runtime that never reads stdout/stderr cannot hold a process's exit
# forever, and a runtime that does read, however slowly, still gets every byte (docs/CONTRACT.md
# 5.1).
# Real vmshim + vmshim-agent (local VM); the drain deadline (half_closed_ms) is shortened to
# 500 ms with the test-only VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS.
#   a: 8 MiB on stdout, exit 5; the FIFO is opened by a reader that never reads;
#   b: 8 MiB on stdout and 8 MiB on stderr, exit 7; neither FIFO is ever opened by anyone.
#      The writing is done by a child the process starts before it exits at once: a process
#      that writes in the foreground can only exit once its output fits in the chain of
#      buffers (pipe, agent, sockets, shim, FIFO), and how much that chain holds when it stalls
#      depends on timing (the agent resumes a paused stream only once its queue is empty), so
#      this is how the state "reaped, output pending, nobody reading" is reached every time.
#      For each: Wait answers the right exit_status within 10 s (deadline 0.5 s, plus the
#      time to discard the rest; the agent adds at most its 5 s drain grace, only when a
#      descendant holds the pipes), /tasks/exit is published before /tasks/delete with that
#      status, the shim logs the give-up at warn naming the container, Delete answers.
#   c: a reader that pauses 1 s (2 x the deadline) after the first MiB, then reads it all;
#   d: a reader taking 64 KiB every 150 ms, so the last ~2 MiB drain over many deadlines
#      after the agent's exit-pending notice: both get every byte (SHA-256), no give-up.
#   f: stdout given up at the first deadline, stderr filled by a descendant only 2 s later:
#      it is given up at a later period and Wait answers (the deadline keeps running after a
#      give-up until the exit).
#   Then the shim's open-fd count is back to its idle value.
#   e: with the default 30 s deadline, a process in the exit-pending state (reaped, output
#      unread): Delete is refused (still running), and SIGTERM shuts the shim down cleanly
#      (exit 0, no sanitizer report: no timer or descriptor leaked).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
CLIENT=$B/tests/integration/stdio_client
need_bins "$CLIENT" "$CTL"
setup
SIZE=$((8 * 1024 * 1024))
export VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS=500
start_agent
start_shim

sha() { sha256sum | cut -d' ' -f1; }

# timed_wait ID WANT_STATUS LIMIT_S: Wait (bounded by 20 s) must answer WANT_STATUS in LIMIT_S.
timed_wait() {
	t0=$(date +%s%N)
	out=$(timeout 20 "$RAW" call "$T/shim.sock" Wait "{\"id\":\"$1\"}" 2>&1)
	ms=$((($(date +%s%N) - t0) / 1000000))
	if printf '%s\n' "$out" | grep -q "\"exit_status\":$2,"; then
		pass "$1: Wait answered after $ms ms: $out"
	else
		fail "$1: Wait after $ms ms: '$out', want exit_status $2"
	fi
	[ "$ms" -lt $(($3 * 1000)) ] && pass "$1: Wait within $3 s" || fail "$1: Wait took $ms ms"
}

timeout 120 "$CTL" -a "unix:$T/shim.sock" events >"$T/events" 2>&1 &
PIDS="$PIDS $!"

# Warm up (the agent link, the first container) before taking the fd baseline.
make_bundle w 'echo warm'
expect_call "warm-up: Create" Create "{\"id\":\"w\",\"bundle\":\"$T/w\",\"stdout\":\"$T/w.out\"}" '^OK'
expect_call "warm-up: Start" Start '{"id":"w"}' '^OK'
expect_call "warm-up: Wait" Wait '{"id":"w"}' '"exit_status":0'
expect_call "warm-up: Delete" Delete '{"id":"w"}' '^OK'
sleep 0.2
base=$(open_fds "$SHIM_PID")
echo "baseline: $base open fds"

# a: the FIFO is opened by a reader that never reads.
make_bundle a "$CLIENT gen 11 $SIZE & exit 5"
mkfifo "$T/a.out"
sleep 1000 <"$T/a.out" &
NOREAD=$!
PIDS="$PIDS $NOREAD"
expect_call "a: Create (stdout opened, never read)" Create "{\"id\":\"a\",\"bundle\":\"$T/a\",\"stdout\":\"$T/a.out\"}" '^OK'
expect_call "a: Start" Start '{"id":"a"}' '^OK'
timed_wait a 5 10
expect_call "a: State" State '{"id":"a"}' '"exit_status":5,.*"status":"STOPPED"'
expect_call "a: Delete" Delete '{"id":"a"}' '^OK.*"exit_status":5'
kill "$NOREAD" 2>/dev/null

# b: stdout and stderr FIFOs that nobody ever opens.
make_bundle b "$CLIENT gen 12 $SIZE & $CLIENT gen 13 $SIZE >&2 & exit 7"
mkfifo "$T/b.out" "$T/b.err"
expect_call "b: Create (FIFOs never opened)" Create "{\"id\":\"b\",\"bundle\":\"$T/b\",\"stdout\":\"$T/b.out\",\"stderr\":\"$T/b.err\"}" '^OK'
expect_call "b: Start" Start '{"id":"b"}' '^OK'
timed_wait b 7 10
expect_call "b: Delete" Delete '{"id":"b"}' '^OK.*"exit_status":7'

for id in a b; do
	line=$(grep 'output not drained' "$T/shim.log" | grep "\"id\":\"$id\"" | head -1)
	if printf '%s' "$line" | grep -q '"level":"warn'; then
		pass "$id: give-up logged: $(printf '%s' "$line" | grep -o 'output not drained[^"]*')"
	else
		fail "$id: no warn line 'output not drained' naming $id"
	fi
	grep -q "reaped in the guest.*\"id\":\"$id\"" "$T/shim.log" &&
		pass "$id: the agent's exit-pending notice started the deadline" ||
		fail "$id: no exit-pending notice logged"
done
want_a=$(printf '/tasks/exit a 5 /tasks/delete a 5 ')
want_b=$(printf '/tasks/exit b 7 /tasks/delete b 7 ')
# One line per event: TOPIC ID STATUS for the exit and delete events of a and b.
wait_log '/tasks/delete .*"id":"b"' "$T/events" 100
got=$(sed -n 's/.* \(\/tasks\/[a-z]*\) {"container_id":"\([ab]\)".*"exit_status":\([0-9]*\).*/\1 \2 \3/p' "$T/events" | tr '\n' ' ')
[ "$got" = "$want_a$want_b" ] && pass "events: $got" || fail "events: got '$got', want '$want_a$want_b'"

# c: a reader that pauses for twice the deadline once, mid-stream.
make_bundle c "exec $CLIENT gen 14 $SIZE"
mkfifo "$T/c.out"
({ dd bs=65536 count=16 iflag=fullblock status=none; sleep 1; cat; } <"$T/c.out" | sha >"$T/c.sha") &
CJOB=$!
PIDS="$PIDS $CJOB"
expect_call "c: Create (reader pauses 1 s)" Create "{\"id\":\"c\",\"bundle\":\"$T/c\",\"stdout\":\"$T/c.out\"}" '^OK'
expect_call "c: Start" Start '{"id":"c"}' '^OK'
timed_wait c 0 20
wait_job "$CJOB" 20 || fail "c: the reader did not finish"
[ "$(cat "$T/c.sha")" = "$("$CLIENT" gen 14 $SIZE | sha)" ] &&
	pass "c: the pausing reader got all 8 MiB (SHA-256 matches)" || fail "c: SHA-256 differs"
expect_call "c: Delete" Delete '{"id":"c"}' '^OK'

# d: a slow reader still draining long after the agent's exit-pending notice.
make_bundle d "exec $CLIENT gen 15 $((3 * 1024 * 1024))"
mkfifo "$T/d.out"
("$CLIENT" slowread "$T/d.out" 65536 150000 "$SHIM_PID" 2>"$T/d.log" | sha >"$T/d.sha") &
DJOB=$!
PIDS="$PIDS $DJOB"
expect_call "d: Create (64 KiB every 150 ms)" Create "{\"id\":\"d\",\"bundle\":\"$T/d\",\"stdout\":\"$T/d.out\"}" '^OK'
expect_call "d: Start" Start '{"id":"d"}' '^OK'
wait_log 'reaped in the guest.*"id":"d"' "$T/shim.log" 300 &&
	pass "d: exit-pending notice while the reader still drains" || fail "d: no exit-pending notice"
timed_wait d 0 20
wait_job "$DJOB" 20 || fail "d: the reader did not finish"
[ "$(cat "$T/d.sha")" = "$("$CLIENT" gen 15 $((3 * 1024 * 1024)) | sha)" ] &&
	pass "d: the slow reader got all 3 MiB (SHA-256 matches)" || fail "d: SHA-256 differs"
expect_call "d: Delete" Delete '{"id":"d"}' '^OK'
if grep 'output not drained' "$T/shim.log" | grep -Eq '"id":"[cd]"'; then
	fail "c/d: the shim gave up on a reading runtime"
else
	pass "c/d: no give-up for a runtime that reads"
fi
# f: a stream that stalls only after the first give-up: stdout is given up at the first
# deadline, stderr fills 2 s later (a descendant starts writing it then); it must be given up
# at a later period, not hold the exit forever.
make_bundle f "$CLIENT gen 16 $((4 * 1024 * 1024)) & (sleep 2; $CLIENT gen 17 $((4 * 1024 * 1024)) >&2) & exit 9"
mkfifo "$T/f.out" "$T/f.err"
expect_call "f: Create (stderr stalls after stdout's give-up)" Create "{\"id\":\"f\",\"bundle\":\"$T/f\",\"stdout\":\"$T/f.out\",\"stderr\":\"$T/f.err\"}" '^OK'
expect_call "f: Start" Start '{"id":"f"}' '^OK'
timed_wait f 9 15
n=$(grep 'output not drained' "$T/shim.log" | grep -c '"id":"f"')
[ "$n" -ge 2 ] && pass "f: two give-ups logged (stdout, then stderr)" ||
	fail "f: $n give-up line(s) for f, want 2 (stdout, then stderr)"
expect_call "f: Delete" Delete '{"id":"f"}' '^OK.*"exit_status":9'
check_fds "after a-f" "$base"
stop_shim

# e: Delete refused and a clean SIGTERM while a process waits in the exit-pending state.
unset VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS
start_shim
make_bundle e "$CLIENT gen 16 $SIZE & exit 9"
mkfifo "$T/e.out"
expect_call "e: Create (30 s deadline, never read)" Create "{\"id\":\"e\",\"bundle\":\"$T/e\",\"stdout\":\"$T/e.out\"}" '^OK'
expect_call "e: Start" Start '{"id":"e"}' '^OK'
wait_log 'reaped in the guest.*"id":"e"' "$T/shim.log" 200 || fail "e: no exit-pending notice"
expect_call "e: State while exit-pending" State '{"id":"e"}' '"status":"RUNNING"'
expect_call "e: Delete while exit-pending" Delete '{"id":"e"}' '^FAILED_PRECONDITION'
stop_shim
pass "e: SIGTERM with a process in the exit-pending state: clean exit"

finish
