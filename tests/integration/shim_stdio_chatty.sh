#!/bin/bash
# shim_stdio_chatty.sh: a descendant that keeps writing to the stdout it inherited cannot hold
# its parent's exit for ever. The process starts `while :; do echo tick; sleep 0.1; done &` and
# exits 7; the runtime reads stdout all along. The agent drains output after a reap for at
# most its drain limit of unpaused time (30 s; 2 s here with the test switch
# VMSHIM_TEST_DRAIN_MAX_MS), then detaches the pipe (logged), so the exit is published. Before the
# limit, the drain grace restarted at every tick: Wait never answered, Kill said NOT_FOUND and
# Delete FAILED_PRECONDITION. Checked: Wait answers exit_status 7 within 15 s, ticks reached
# the runtime before it, the agent logged the detach, Delete answers, the shim's fds are back
# to the baseline.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins
setup
export VMSHIM_TEST_DRAIN_MAX_MS=2000
start_agent
start_shim
base=$(open_fds "$SHIM_PID")

make_bundle chatty '(while :; do echo tick; sleep 0.1; done) & exit 7'
mkfifo "$T/c.out"
cat "$T/c.out" >"$T/c.cap" &
PIDS="$PIDS $!"
expect_call "Create" Create "{\"id\":\"c\",\"bundle\":\"$T/chatty\",\"stdout\":\"$T/c.out\"}" '^OK'
expect_call "Start" Start '{"id":"c"}' '^OK'
t0=$(date +%s%N)
out=$(timeout 20 "$RAW" call "$T/shim.sock" Wait '{"id":"c"}' 2>&1)
ms=$((($(date +%s%N) - t0) / 1000000))
printf '%s\n' "$out" | grep -q '"exit_status":7,' && pass "Wait answered exit 7 after $ms ms" ||
	fail "Wait after $ms ms: '$out'"
[ "$ms" -lt 15000 ] && pass "Wait within 15 s" || fail "Wait took $ms ms"
n=$(grep -c '^tick$' "$T/c.cap")
[ "$n" -ge 5 ] && pass "$n ticks reached the runtime before the exit" || fail "only $n ticks reached the runtime"
grep -q 'pipe was still being written 2000 ms later' "$T/agent.log" &&
	pass "agent: $(grep -o 'pid [0-9]* exited but its stdout pipe was still being written[^"]*' "$T/agent.log" | head -1)" ||
	fail "the agent did not log the detach"
expect_call "Delete" Delete '{"id":"c"}' '^OK.*"exit_status":7'
check_fds "after Delete" "$base"
stop_shim
finish
