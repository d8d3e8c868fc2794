#!/bin/bash
# shim_fault_agent.sh: the real agent (the local VM) killed with SIGKILL, as a VM dies:
#  - mid-call: Pids, Stats, Start and 5 parked Waits in flight turn UNAVAILABLE (or INTERNAL);
#  - mid-bring-up: a Create in flight fails UNAVAILABLE and leaves no task and no descriptor;
#  - mid-stream: with 1 GiB flowing on stdout, what reached the FIFO is a prefix of the source,
#    the FIFO gets EOF, Wait answers.
# After each: State/Connect/Delete answer, the restarted agent is reconnected, a new container
# runs, and the shim's open-fd count returns to its idle baseline (docs/CONTRACT.md 5.6, 5.7).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins
setup
CONNECT_TIMEOUT_MS=1000
write_config '"request_timeout_ms": 10000,'
start_agent
start_shim
wait_connected 1 || die "the shim never connected to the agent"
sleep 0.2
base=$(open_fds "$SHIM_PID")
echo "baseline: $base open fds, RSS $(rss_kb "$SHIM_PID") KiB"

# A healthy container runs end to end with stdout to a file.
healthy() {
	make_bundle "hb$1" "echo healthy $1"
	: >"$T/h$1.out"
	ok=0
	for i in $(seq 60); do
		if call Create "{\"id\":\"h$1\",\"bundle\":\"$T/hb$1\",\"stdout\":\"$T/h$1.out\"}" | grep -q '^OK'; then
			ok=1
			break
		fi
		sleep 0.05
	done
	[ $ok = 1 ] || fail "$2: Create h$1 after the agent came back"
	expect_call "$2: Start h$1" Start "{\"id\":\"h$1\"}" '^OK'
	expect_call "$2: Wait h$1" Wait "{\"id\":\"h$1\"}" '"exit_status":0'
	expect_call "$2: Delete h$1" Delete "{\"id\":\"h$1\"}" '^OK'
	[ "$(cat "$T/h$1.out")" = "healthy $1" ] && pass "$2: h$1's stdout arrived" || fail "$2: h$1 stdout '$(cat "$T/h$1.out")'"
}

# restart N WHAT: a new agent, the shim's Nth connection, a healthy container, fds at baseline.
restart() {
	start_agent
	wait_connected "$1" || fail "$2: no reconnection"
	healthy "$1" "$2"
	check_fds "$2" "$base"
}

# kill_agent: SIGKILL the local VM and everything it runs.
kill_agent() {
	kill -9 "$AGENT_PID" $(descendants "$AGENT_PID") 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
}

# --- mid-call -------------------------------------------------------------------------------
make_bundle b1 'sleep 1000'
make_bundle b2 'exit 0'
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\"}" '^OK'
expect_call "Start c1" Start '{"id":"c1"}' '^OK'
expect_call "Create c2" Create "{\"id\":\"c2\",\"bundle\":\"$T/b2\"}" '^OK'
kill -STOP "$AGENT_PID"
for m in Pids Stats; do
	call $m '{"id":"c1"}' >"$T/inflight.$m" 2>&1 &
done
call Start '{"id":"c2"}' >"$T/inflight.Start" 2>&1 &
for w in 1 2 3 4 5; do
	call Wait '{"id":"c1"}' >"$T/inflight.Wait$w" 2>&1 &
done
sleep 0.5
kill_agent
wait_all=0
for f in "$T"/inflight.*; do
	:
done
for i in $(seq 100); do
	[ "$(cat "$T"/inflight.* | wc -l)" -ge 8 ] && break
	sleep 0.05
done
for f in "$T"/inflight.*; do
	out=$(cat "$f")
	if printf '%s' "$out" | grep -Eq '^(UNAVAILABLE|INTERNAL)'; then
		pass "mid-call ${f##*.}: $out"
	else
		fail "mid-call ${f##*.}: '$out'"
	fi
done
alive "mid-call"
expect_call "mid-call: State c1" State '{"id":"c1"}' '"status":"RUNNING"'
expect_call "mid-call: Connect" Connect '{"id":"c1"}' '^OK'
expect_call "mid-call: Wait c1 with the agent down" Wait '{"id":"c1"}' '^UNAVAILABLE'
expect_call "mid-call: Delete c2 (never started)" Delete '{"id":"c2"}' '^OK'
restart 2 "mid-call"

# --- mid-bring-up ---------------------------------------------------------------------------
make_bundle b4 'sleep 1000'
mkfifo "$T/c4.in"
kill -STOP "$AGENT_PID"
call Create "{\"id\":\"c4\",\"bundle\":\"$T/b4\",\"stdin\":\"$T/c4.in\",\"stdout\":\"$T/c4.out\"}" >"$T/create4" 2>&1 &
CR=$!
sleep 0.5
kill_agent
wait "$CR"
grep -q '^UNAVAILABLE' "$T/create4" && pass "mid-bring-up: Create $(cat "$T/create4")" || fail "mid-bring-up: Create '$(cat "$T/create4")'"
expect_call "mid-bring-up: State c4" State '{"id":"c4"}' '^NOT_FOUND'
alive "mid-bring-up"
restart 3 "mid-bring-up"
expect_call "mid-bring-up: the id c4 is free again" Create "{\"id\":\"c4\",\"bundle\":\"$T/b2\"}" '^OK'
expect_call "mid-bring-up: Delete c4" Delete '{"id":"c4"}' '^OK'
check_fds "mid-bring-up" "$base"

# --- mid-stream: 1 GiB on stdout ------------------------------------------------------------
SRC='seq 1 200000000 | head -c 1073741824'
make_bundle b5 "$SRC"
mkfifo "$T/c5.out"
cat "$T/c5.out" >"$T/c5.captured" &
READER=$!
PIDS="$PIDS $READER"
expect_call "mid-stream: Create c5" Create "{\"id\":\"c5\",\"bundle\":\"$T/b5\",\"stdout\":\"$T/c5.out\"}" '^OK'
expect_call "mid-stream: Start c5" Start '{"id":"c5"}' '^OK'
for i in $(seq 400); do
	[ "$(stat -c %s "$T/c5.captured")" -ge 67108864 ] && break
	sleep 0.05
done
kill_agent
got_at_kill=$(stat -c %s "$T/c5.captured")
eof=0
for i in $(seq 200); do
	kill -0 "$READER" 2>/dev/null || { eof=1; break; }
	sleep 0.05
done
[ $eof = 1 ] && pass "mid-stream: the FIFO got EOF ($got_at_kill bytes at the kill, $(stat -c %s "$T/c5.captured") in all)" || fail "mid-stream: the FIFO reader never saw EOF"
wait "$READER" 2>/dev/null
res=$(cmp "$T/c5.captured" <(sh -c "$SRC") 2>&1)
case "$res" in
*"EOF on $T/c5.captured"*) pass "mid-stream: what arrived is a prefix of the source ($res)" ;;
"") pass "mid-stream: the whole source arrived before the kill" ;;
*) fail "mid-stream: not a prefix: $res" ;;
esac
rm -f "$T/c5.captured"
expect_call "mid-stream: Wait c5" Wait '{"id":"c5"}' '^(UNAVAILABLE|OK)'
expect_call "mid-stream: State c5" State '{"id":"c5"}' '"id":"c5"'
grep -q 'stdout stream failed' "$T/shim.log" && pass "mid-stream: $(grep -o 'stdout stream failed[^"]*' "$T/shim.log" | head -1)" || fail "mid-stream: no stream failure logged"
alive "mid-stream"
restart 4 "mid-stream"

# After the restart the new agent knows nothing of c1 and c5: they must not stay stuck.
expect_call "after restarts: Kill c1" Kill '{"id":"c1","signal":9}' '^(OK|NOT_FOUND)'
expect_call "after restarts: Delete c1" Delete '{"id":"c1"}' '^OK'
expect_call "after restarts: Delete c5" Delete '{"id":"c5"}' '^OK'
check_fds "after restarts" "$base"
echo "RSS at the end: $(rss_kb "$SHIM_PID") KiB"
finish
