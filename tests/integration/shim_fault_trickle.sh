#!/bin/bash
# shim_fault_trickle.sh: an agent that starts a frame and never finishes it (docs/RELIABILITY.md,
# row "endless trickle"). fake_agent --mode trickle-once answers the first Pids with a response
# header announcing 60000 bytes, then one byte per 100 ms for ever; every later call behaves, and
# Stats then answers 2 MiB sent steadily over about 0.8 s. Checked:
#   - the trickled call answers (DEADLINE_EXCEEDED or UNAVAILABLE) within request_timeout_ms
#     plus slack, and a Wait parked on the container answers UNAVAILABLE;
#   - the shim drops the link for the unfinished frame: one warning, with the figures;
#   - it reconnects, and a later Pids on the new link SUCCEEDS (before the bound on one frame,
#     the link stayed wedged behind the unfinished frame and every later agent call timed out);
#   - a large frame arriving steadily over several reads is not cut;
#   - open fds back to the baseline; SIGTERM logs the link's close at info, not as a fault.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins "$FAKE"
setup
TIMEOUT_MS=2500
cat >"$T/config.json" <<JSON
{
  "vm": {"vsock": "uds:$T/vm.sock", "connect_timeout_ms": 1000},
  "request_timeout_ms": $TIMEOUT_MS, "max_message_bytes": 4194304,
  "seccomp": false, "allowed_uids": [$(id -u)], "log_level": "info"
}
JSON
make_bundle b 'exit 0'
STALL='agent link lost: protocol error: a frame from the agent did not finish'

start_fake trickle-once
start_shim
wait_connected 1 || die "the shim did not connect to the fake agent (see $T/shim.log)"
sleep 0.1
base=$(open_fds "$SHIM_PID")
echo "baseline: $base open fds"

expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b\"}" '^OK'
call Wait '{"id":"c1"}' >"$T/wait1" 2>&1 &
WAITER=$!
sleep 0.1

# The trickled call answers within bounded time.
t0=$(date +%s%N)
expect_call "trickled Pids" Pids '{"id":"c1"}' '^(DEADLINE_EXCEEDED|UNAVAILABLE)'
ms=$((($(date +%s%N) - t0) / 1000000))
[ $ms -lt $((TIMEOUT_MS + 1500)) ] && pass "trickled Pids answered in $ms ms (request_timeout_ms $TIMEOUT_MS)" ||
	fail "trickled Pids took $ms ms"

# The link is dropped for the unfinished frame, logged once at warning with the figures.
if wait_log "$STALL" "$T/shim.log" 60; then
	pass "link dropped: $(grep -o "$STALL[^\"]*" "$T/shim.log")"
else
	fail "the link was not dropped for the unfinished frame: $(grep -o 'agent link[^"]*' "$T/shim.log" | tr '\n' ';')"
fi
n=$(grep -c "did not finish" "$T/shim.log")
[ "$n" = 1 ] && pass "one line about it" || fail "$n lines about the unfinished frame"
grep "did not finish" "$T/shim.log" | grep -q '"level":"warning"' && pass "logged at warning" ||
	fail "not logged at warning: $(grep 'did not finish' "$T/shim.log")"
grep -q "fake_agent: trickle ended" "$T/fake.log" && pass "the agent saw the link close" ||
	{ sleep 0.5; grep -q "fake_agent: trickle ended" "$T/fake.log" && pass "the agent saw the link close (late)" || fail "the trickling agent still writes"; }
timeout 5 tail --pid="$WAITER" -f /dev/null 2>/dev/null
grep -q '^UNAVAILABLE' "$T/wait1" && pass "parked Wait: $(cat "$T/wait1")" || fail "parked Wait: '$(cat "$T/wait1")'"

# Reconnected; a later agent call on the new link succeeds.
wait_connected 2 && pass "reconnected to the agent" || fail "no reconnection after the dropped link"
t0=$(date +%s%N)
expect_call "later Pids" Pids '{"id":"c1"}' '^OK .*"pid":4242'
ms=$((($(date +%s%N) - t0) / 1000000))
echo "later Pids took $ms ms"

# A large frame arriving steadily (2 MiB over about 0.8 s, many reads) is not cut.
t0=$(date +%s%N)
out=$(call Stats '{"id":"c1"}' 2>&1)
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "${out#OK }" != "$out" ] && [ ${#out} -gt 2097152 ]; then
	pass "steady 2 MiB Stats: OK, ${#out} bytes of answer in $ms ms ($(grep -o 'steady: [^(]*' "$T/fake.log" | tail -1))"
else
	fail "steady 2 MiB Stats: '$(printf '%s' "$out" | head -c 200)' (${#out} bytes, $ms ms)"
fi
n=$(grep -c "did not finish" "$T/shim.log")
[ "$n" = 1 ] && pass "the large frame was not cut" || fail "$n lines about an unfinished frame, want 1 (the trickled one; the large frame must not be cut)"
expect_call "Pids once more" Pids '{"id":"c1"}' '^OK .*"pid":4242'
n=$(grep -c 'connected to agent' "$T/shim.log")
[ "$n" = 2 ] && pass "still on the second link" || fail "$n connections to the agent"

expect_call "State" State '{"id":"c1"}' '"id":"c1"'
expect_call "Connect" Connect '{}' '^OK'
expect_call "Delete c1" Delete '{"id":"c1"}' '^OK'
alive "after the trickle"
check_fds "after the trickle" "$base"

# A normal shutdown is not a fault: the link's close is logged at info.
stop_shim
if grep -q 'agent link closed: the shim is shutting down' "$T/shim.log" &&
	! grep 'shutting down' "$T/shim.log" | grep -q '"level":"warning"'; then
	pass "shutdown: $(grep -o '"level":"[a-z]*","msg":"agent link closed[^"]*' "$T/shim.log")"
else
	fail "shutdown logged: $(grep 'agent link' "$T/shim.log" | tail -2 | tr '\n' ';')"
fi
finish
