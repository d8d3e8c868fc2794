#!/bin/bash
# shim_agent.sh: docs/CONTRACT.md 5.6. The agent dying during a call turns it into UNAVAILABLE;
# State and Delete keep working from the shim's own state; a restarted agent is reconnected and calls
# succeed again; an "agent" that sends garbage is dropped without harming the shim.
. "$(dirname "$0")/lib.sh"
need_bins
setup
CONNECT_TIMEOUT_MS=1000
start_agent
start_shim

make_bundle b1 'sleep 1000'
make_bundle b2 'exit 0'
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\"}" '^OK'
expect_call "Start c1" Start '{"id":"c1"}' '^OK'
expect_call "Create c2" Create "{\"id\":\"c2\",\"bundle\":\"$T/b2\"}" '^OK'

# Freeze the agent so a call is surely in flight, then kill it together with its children
# (a created-not-started process is a forked child of the local VM holding its sockets: a real
# VM dies as a whole).
KIDS=$(descendants "$AGENT_PID")
kill -STOP "$AGENT_PID"
call Pids '{"id":"c1"}' >"$T/inflight" 2>&1 &
CALLER=$!
sleep 0.3
kill -9 "$AGENT_PID" $KIDS
wait "$CALLER"
grep -q '^UNAVAILABLE' "$T/inflight" && pass "in-flight call: $(cat "$T/inflight")" || fail "in-flight call: $(cat "$T/inflight")"
wait "$AGENT_PID" 2>/dev/null

expect_call "State with the agent down" State '{"id":"c1"}' '"status":"RUNNING"'
expect_call "Connect with the agent down" Connect '{"id":"c1"}' '^OK'
expect_call "Pids with the agent down" Pids '{"id":"c1"}' '^UNAVAILABLE'
expect_call "Delete (never started) with the agent down" Delete '{"id":"c2"}' '^OK'
kill -0 "$SHIM_PID" && pass "the shim survived the agent's death" || fail "the shim died"

# The agent comes back: the shim reconnects and calls succeed again.
start_agent
ok=0
for i in $(seq 100); do
	if call Create "{\"id\":\"c3\",\"bundle\":\"$T/b2\"}" | grep -q '^OK'; then ok=1; break; fi
	sleep 0.05
done
[ $ok = 1 ] && pass "Create after the agent restarted (attempt $i)" || fail "no Create after the restart"
expect_call "Start c3" Start '{"id":"c3"}' '^OK'
expect_call "Wait c3" Wait '{"id":"c3"}' '"exit_status":0'
expect_call "Delete c3" Delete '{"id":"c3"}' '^OK'

# A fake agent that answers the hybrid handshake, then sends garbage.
if command -v python3 >/dev/null; then
	stop_agent
	rm -f "$T/vm.sock"
	python3 - "$T/vm.sock" >"$T/fake.log" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(16)
s.settimeout(10)
n = 0
try:
    while n < 3:
        c, _ = s.accept()
        c.recv(64)
        c.sendall(b"OK 1073741824\n" + b"\xff" * 64)
        n += 1
        time.sleep(0.2)
        c.close()
except Exception as e:
    print(e)
print("garbage sent", n)
PY
	FAKE=$!
	PIDS="$PIDS $FAKE"
	wait "$FAKE"
	grep -q "garbage sent 3" "$T/fake.log" && pass "fake agent sent garbage 3 times" || fail "fake agent: $(cat "$T/fake.log")"
	grep -q 'agent link lost: agent sent a malformed frame' "$T/shim.log" && pass "garbage logged as a malformed frame" || fail "no malformed-frame log"
	kill -0 "$SHIM_PID" && pass "the shim survived the garbage" || fail "the shim died on garbage"
	expect_call "State after the garbage" State '{"id":"c1"}' '^OK'
fi
finish
