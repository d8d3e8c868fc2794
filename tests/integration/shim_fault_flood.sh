#!/bin/bash
# shim_fault_flood.sh: a stdout FIFO that nobody reads cannot hold a process's exit forever.
# The hostile agent (fake_agent --mode stream-flood) sends 3 MiB on stdout to a FIFO with no
# reader: backpressure stops the shim reading the guest, so the guest's EOF is never read.
# Kill 9: the agent reports the exit at once. Then:
#   phase 1 (default 30 s drain deadline): Delete is not refused: it drops the undelivered
#            output, publishes the exit (a parked Wait answers 137) and deletes the process;
#   phase 2 (deadline shortened to 1 s with the test-only VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS):
#            with no Delete, the output streams are failed after the deadline (logged at warn,
#            naming the container), Wait answers 137, State says STOPPED, Delete works.
# Each time the shim closed the flooded stream and its open-fd count returns to the baseline.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins "$FAKE"
setup
write_config '"request_timeout_ms": 5000,'
make_bundle b 'exit 0'

# run_stuck ID: Create+Start ID with stdout/stderr FIFOs nobody reads, Kill 9, and wait until
# the shim has logged the agent's exit report.
run_stuck() {
	mkfifo "$T/$1.out" "$T/$1.err"
	expect_call "$1: Create (stdout FIFO without reader)" Create "{\"id\":\"$1\",\"bundle\":\"$T/b\",\"stdout\":\"$T/$1.out\",\"stderr\":\"$T/$1.err\"}" '^OK'
	expect_call "$1: Start" Start "{\"id\":\"$1\"}" '^OK'
	sleep 0.3
	expect_call "$1: Kill 9" Kill "{\"id\":\"$1\",\"signal\":9}" '^OK'
	wait_log "exit 137 reported by the agent.*\"id\":\"$1\"" "$T/shim.log" ||
		fail "$1: the agent's exit report was not logged"
	expect_call "$1: State with the output stuck" State "{\"id\":\"$1\"}" '"status":"RUNNING"'
}

# Phase 1: the default deadline (30 s) is far away; Delete must not wait for it.
start_fake stream-flood
start_shim
wait_connected 1 || die "the shim did not connect to the fake agent"
sleep 0.1
base=$(open_fds "$SHIM_PID")
echo "baseline: $base open fds"
run_stuck c1
timeout 20 "$RAW" call "$T/shim.sock" Wait '{"id":"c1"}' >"$T/wait1" 2>&1 &
WAITP=$!
sleep 0.2
t0=$(date +%s%N)
expect_call "c1: Delete after the exit, output undrained" Delete '{"id":"c1"}' '^OK.*"exit_status":137'
wait "$WAITP"
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q '"exit_status":137' "$T/wait1" && pass "c1: the parked Wait answered: $(cat "$T/wait1")" || fail "c1: Wait: '$(cat "$T/wait1")'"
[ "$ms" -lt 10000 ] && pass "c1: Delete and Wait done in $ms ms (the 30 s deadline not needed)" || fail "c1: took $ms ms"
grep -q 'Delete before stdout/stderr drained' "$T/shim.log" && pass "c1: dropped output logged" || fail "c1: no log of the dropped output"
wait_log 'stdout: flood cut' "$T/fake.log" && pass "c1: the shim closed the flooded stream" ||
	fail "c1: flooded stream not closed: fake agent: $(tail -4 "$T/fake.log" | tr '\n' ';') shim: $(tail -4 "$T/shim.log" | tr '\n' ';')"
expect_call "c1: gone after Delete" State '{"id":"c1"}' '^NOT_FOUND'
check_fds "c1" "$base"
stop_shim

# Phase 2: a 1 s deadline, no Delete: the exit is published on its own.
export VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS=1000
: >"$T/shim.log"
: >"$T/fake.log"
start_shim
wait_connected 1 || die "the shim did not connect to the fake agent"
sleep 0.1
base=$(open_fds "$SHIM_PID")
run_stuck c2
t0=$(date +%s%N)
out=$(timeout 15 "$RAW" call "$T/shim.sock" Wait '{"id":"c2"}' 2>&1)
ms=$((($(date +%s%N) - t0) / 1000000))
if printf '%s\n' "$out" | grep -q '"exit_status":137'; then
	pass "c2: Wait answered after $ms ms: $out"
else
	fail "c2: Wait: '$out' after $ms ms"
fi
[ "$ms" -lt 8000 ] && pass "c2: within the drain deadline (1 s) plus slack" || fail "c2: Wait took $ms ms"
line=$(grep 'output not drained' "$T/shim.log" | head -1)
if printf '%s' "$line" | grep -q '"level":"warn' && printf '%s' "$line" | grep -q '"id":"c2"'; then
	pass "c2: logged at warn with the container: $(printf '%s' "$line" | grep -o 'output not drained[^"]*')"
else
	fail "c2: no warn line naming c2: '$line'"
fi
expect_call "c2: State" State '{"id":"c2"}' '"exit_status":137,"exited_at":"2.*"status":"STOPPED"'
wait_log 'stdout: flood cut' "$T/fake.log" && pass "c2: the shim closed the flooded stream" ||
	fail "c2: flooded stream not closed: fake agent: $(tail -4 "$T/fake.log" | tr '\n' ';') shim: $(tail -4 "$T/shim.log" | tr '\n' ';')"
expect_call "c2: Delete" Delete '{"id":"c2"}' '^OK'
check_fds "c2" "$base"
alive "after both"
finish
