#!/bin/bash
# shim_limits_agent.sh: exits are not lost across an agent outage (docs/ARCHITECTURE.md,
# "Container and process lifecycle").
# - The agent's ProcessState method (docs/PROTOCOL.md) reports a finished process.
# - Agent restarted: c1's process is SIGKILLed while the agent is SIGSTOPped, then the agent
#   is SIGKILLed, so its exit reaches nobody; a new agent knows nothing of c1. After the shim
#   reconnects it asks (ProcessState -> NOT_FOUND), publishes /tasks/exit with status 255
#   (logged), and Wait answers 255.
# - Agent survives, the shim's link drops (the agent's VMSHIM_TEST_BRINGUP_OVERLAP knob drops
#   every control connection): a process still running is not declared dead by the resync,
#   and its later exit arrives as usual.
# Not covered: an exit the surviving agent sent on the dropped connection but the shim never
# read; the kernel delivers what was sent before the close, so no test can lose it here.
. "$(dirname "$0")/lib.sh"
LC=$B/tests/integration/shim_limits_client
need_bins "$LC"
setup
CONNECT_TIMEOUT_MS=1000
start_agent
start_shim
"$RAW" subscribe "$T/shim.sock" 5 >"$T/events" 2>&1 &
SUB=$!
PIDS="$PIDS $SUB"
for i in $(seq 100); do grep -q subscribed "$T/events" && break; sleep 0.05; done

# ProcessState straight from the agent.
make_bundle b0 'exit 3'
expect_call "Create c0" Create "{\"id\":\"c0\",\"bundle\":\"$T/b0\"}" '^OK'
expect_call "Start c0" Start '{"id":"c0"}' '^OK'
expect_call "Wait c0" Wait '{"id":"c0"}' '"exit_status":3'
out=$("$LC" agentcall "$T/vm.sock" ProcessState '{"id":"c0","exec_id":""}')
echo "$out" | grep -q '"exit_status":3,"exited_at":"20.*"status":"stopped"' && pass "agent ProcessState c0: $out" || fail "agent ProcessState c0: $out"
out=$("$LC" agentcall "$T/vm.sock" ProcessState '{"id":"nope","exec_id":""}')
echo "$out" | grep -q '^NOT_FOUND' && pass "agent ProcessState unknown: $out" || fail "agent ProcessState unknown: $out"
expect_call "Delete c0" Delete '{"id":"c0"}' '^OK'

# Agent restarted: the exit is lost with it.
make_bundle b1 'sleep 1000'
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\"}" '^OK'
expect_call "Start c1" Start '{"id":"c1"}' '^OK'
pid=$(call State '{"id":"c1"}' | grep -o '"pid":[0-9]*' | cut -d: -f2)
kill -STOP "$AGENT_PID"
kill -9 "$pid"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
start_agent
ok=0
for i in $(seq 100); do
	if call State '{"id":"c1"}' | grep -q '"status":"STOPPED"'; then ok=1; break; fi
	sleep 0.05
done
[ $ok = 1 ] && pass "c1 STOPPED after the agent restarted (poll $i)" || fail "c1 not stopped: $(call State '{"id":"c1"}')"
expect_call "State c1 exit 255" State '{"id":"c1"}' '"exit_status":255'
expect_call "Wait c1" Wait '{"id":"c1"}' '"exit_status":255'
grep -q 'the agent does not know process [0-9]* (it restarted?)' "$T/shim.log" && pass "logged: $(grep -o 'the agent does not know process[^"]*' "$T/shim.log" | head -1)" || fail "no log line for the lost exit"
for i in $(seq 100); do grep -q '/tasks/exit' "$T/events" && break; sleep 0.05; done
grep -q '/tasks/exit' "$T/events" && pass "/tasks/exit published to the subscriber" || fail "no /tasks/exit event: $(cat "$T/events")"
expect_call "Delete c1" Delete '{"id":"c1"}' '"exit_status":255'

# The agent survives, the link drops: nothing running is declared dead.
stop_agent
rm -f "$T/vm.sock"
VMSHIM_TEST_BRINGUP_OVERLAP=1 "$AGENT" --listen-uds "$T/vm.sock" >>"$T/agent.log" 2>&1 &
AGENT_PID=$!
PIDS="$PIDS $AGENT_PID"
AGENT_PIDS="$AGENT_PIDS $AGENT_PID"
wait_path "$T/vm.sock" || die "the agent did not listen"
make_bundle b2 'sleep 1000'
ok=0
for i in $(seq 100); do
	if call Create "{\"id\":\"c2\",\"bundle\":\"$T/b2\"}" | grep -q '^OK'; then ok=1; break; fi
	sleep 0.05
done
[ $ok = 1 ] && pass "Create c2 on the new agent" || fail "Create c2"
expect_call "Start c2" Start '{"id":"c2"}' '^OK'
before=$(grep -c 'connected to agent' "$T/shim.log")
"$LC" agentcall "$T/vm.sock" MountDisk '{"id":"x1","serial":"s1","target":"/tmp/x1"}' >/dev/null
"$LC" agentcall "$T/vm.sock" MountDisk '{"id":"x2","serial":"s2","target":"/tmp/x2"}' >/dev/null
for i in $(seq 100); do [ "$(grep -c 'connected to agent' "$T/shim.log")" -gt "$before" ] && break; sleep 0.05; done
[ "$(grep -c 'connected to agent' "$T/shim.log")" -gt "$before" ] && pass "the link dropped and the shim reconnected" || fail "no reconnect"
for i in $(seq 40); do grep -q 'asking about 1 running' "$T/shim.log" && break; sleep 0.05; done
grep -q 'asking about 1 running process' "$T/shim.log" && pass "resync asked about c2" || fail "no resync"
sleep 0.2
expect_call "c2 still RUNNING after the resync" State '{"id":"c2"}' '"status":"RUNNING"'
expect_call "Kill c2" Kill '{"id":"c2","signal":9}' '^OK'
expect_call "Wait c2" Wait '{"id":"c2"}' '"exit_status":137'
finish
