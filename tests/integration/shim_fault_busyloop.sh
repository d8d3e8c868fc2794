#!/bin/bash
# shim_fault_busyloop.sh: the bound on one agent frame (shim/guest.c) must judge the agent, not
# the shim. When the shim's loop is held up (here: SIGSTOP) while the rest of a large frame
# arrives, the stall timer and the socket become due together; the bytes already waiting in
# the socket are the frame finishing, not a stalled agent. fake_agent --mode split answers
# Stats with a 160 kB frame: the header and 16 bytes at once, the rest 1 s later in one write.
# The shim is stopped from 0.2 s to 2.2 s after the first part (request_timeout_ms 1000, so
# the frame is "older" than its bound when the shim wakes). On waking, one read takes 64 KiB
# and the rest is still in the socket when the timer fires. Checked: the link is not dropped
# (no "did not finish" line, still one connection), and a later Pids on it answers OK. The
# Stats call itself may answer OK or DEADLINE_EXCEEDED (its own deadline passed while the
# shim was stopped): printed, not asserted.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins "$FAKE"
setup
cat >"$T/config.json" <<JSON
{
  "vm": {"vsock": "uds:$T/vm.sock", "connect_timeout_ms": 1000},
  "request_timeout_ms": 1000, "max_message_bytes": 4194304,
  "seccomp": false, "allowed_uids": [$(id -u)], "log_level": "info"
}
JSON
make_bundle b 'exit 0'

start_fake split
start_shim
wait_connected 1 || die "the shim did not connect to the fake agent (see $T/shim.log)"
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b\"}" '^OK'

call Stats '{"id":"c1"}' >"$T/stats" 2>&1 &
STATS=$!
wait_log 'split: first part sent' "$T/fake.log" 100 || die "the fake agent never answered Stats"
# Let the shim read the first part (it starts the frame's clock), then hold its loop while
# the rest arrives.
sleep 0.2
kill -STOP "$SHIM_PID"
wait_log 'split: rest sent' "$T/fake.log" 100 || { kill -CONT "$SHIM_PID"; die "the fake agent did not send the rest"; }
sleep 1.2
kill -CONT "$SHIM_PID"
wait_job "$STATS" 15 || fail "Stats did not answer within 15 s"
echo "Stats after the stop: $(head -c 60 "$T/stats")"

expect_call "Pids after the stop" Pids '{"id":"c1"}' '^OK .*"pid":4242'
if grep -q 'did not finish' "$T/shim.log"; then
	fail "the link was dropped for a frame whose rest was in the socket: $(grep -o 'agent link lost[^"]*' "$T/shim.log")"
else
	pass "the link was kept: the frame's rest was already in the socket"
fi
n=$(grep -c 'connected to agent' "$T/shim.log")
[ "$n" = 1 ] && pass "still on the first link" || fail "$n connections to the agent, want 1"
expect_call "Delete c1" Delete '{"id":"c1"}' '^OK'
stop_shim
finish
