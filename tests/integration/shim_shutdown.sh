#!/bin/bash
# shim_shutdown.sh: what the shim takes and runs once shutdown has begun.
#   1. After Shutdown without now (exit once the last task is deleted), Create and Exec are
#      still served (containerd asks Shutdown after each task of a group is deleted, while
#      the group's other containers live on); deleting the last task ends the shim.
#   2. SIGTERM with bring-up jobs queued: the queued Create is never run, it is answered; the
#      running Create (waiting for the bring-up lock, which another Create holds while the
#      agent is stopped) stops before its next step and never reaches the agent; the shim
#      exits promptly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins
setup
write_config '"workers": 2, "request_timeout_ms": 20000,'
make_bundle b 'sleep 100'
start_agent
start_shim
wait_connected 1 || die "the shim did not connect to the agent"

# 1. Shutdown without now.
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b\"}" '^OK'
expect_call "Shutdown (not now)" Shutdown '{"id":"c1"}' '^OK'
expect_call "Create after Shutdown served" Create "{\"id\":\"c2\",\"bundle\":\"$T/b\"}" '^OK'
expect_call "State c1 still answers" State '{"id":"c1"}' '"status":"CREATED"'
expect_call "Delete c1 (c2 is left)" Delete '{"id":"c1"}' '^OK'
kill -0 "$SHIM_PID" 2>/dev/null && pass "the shim serves on while c2 is left" || fail "the shim exited with c2 left"
expect_call "Delete c2 (the last task)" Delete '{"id":"c2"}' '^OK'
i=0
while [ $i -lt 100 ] && kill -0 "$SHIM_PID" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
if kill -0 "$SHIM_PID" 2>/dev/null; then
	fail "the shim did not exit after the last Delete"
	kill -9 "$SHIM_PID"
	wait "$SHIM_PID" 2>/dev/null
	rm -f "$T/shim.sock"
else
	wait "$SHIM_PID"
	pass "the shim exited after the last task was deleted (status $?)"
fi
SHIM_PID=

# 2. SIGTERM with a bring-up running and one queued. Confidential, so bring-ups take the lock
#    one at a time, and 3 workers (bring-up jobs take at most 2): c0 holds the lock, blocked
#    in CreateContainer on a stopped agent (SIGSTOP); ca runs and waits for the lock; cb is
#    queued. Each state is observed (log lines, State), never guessed from a sleep.
stop_shim_quietly() { kill -9 "$SHIM_PID" 2>/dev/null; wait "$SHIM_PID" 2>/dev/null; SHIM_PID=; }
write_config '"workers": 3, "request_timeout_ms": 20000,'
sed -i 's/"vm": {/"vm": {"confidential": true, /' "$T/config.json"
: >"$T/shim.log"
start_shim
wait_connected 1 || die "the shim did not connect to the agent"
kill -STOP "$AGENT_PID"
"$RAW" call "$T/shim.sock" Create "{\"id\":\"c0\",\"bundle\":\"$T/b\"}" >"$T/c0.out" 2>&1 &
C0=$!
wait_log '"bring-up begin".*"id":"c0"' "$T/shim.log" ||
	{ kill -CONT "$AGENT_PID"; die "c0's bring-up did not begin"; }
"$RAW" call "$T/shim.sock" Create "{\"id\":\"ca\",\"bundle\":\"$T/b\"}" >"$T/ca.out" 2>&1 &
CA=$!
wait_log 'bring-up lock busy: waiting","func":"[^"]*","id":"ca"' "$T/shim.log" ||
	{ kill -CONT "$AGENT_PID"; die "ca did not wait for the bring-up lock"; }
"$RAW" call "$T/shim.sock" Create "{\"id\":\"cb\",\"bundle\":\"$T/b\"}" >"$T/cb.out" 2>&1 &
CB=$!
# cb exists (being created) once the loop took its Create; no worker is free to run it.
i=0
until call State '{"id":"cb"}' | grep -q 'being created'; do
	i=$((i + 1))
	[ $i -lt 200 ] || { kill -CONT "$AGENT_PID"; die "cb's Create was not taken"; }
	sleep 0.05
done
kill -TERM "$SHIM_PID"
wait_log 'shutting down' "$T/shim.log" || fail "no shutdown logged"
# Let c0's guest call finish: the lock passes to ca, which must stop before its next step.
kill -CONT "$AGENT_PID"
i=0
while [ $i -lt 100 ] && kill -0 "$SHIM_PID" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
if kill -0 "$SHIM_PID" 2>/dev/null; then
	fail "the shim did not exit within 5 s of SIGTERM (a queued Create ran on the way out?)"
	stop_shim_quietly
else
	rc=0
	wait "$SHIM_PID" || rc=$?
	[ "$rc" = 0 ] && pass "the shim exited promptly after SIGTERM" || fail "the shim exited $rc"
	SHIM_PID=
fi
wait "$C0" "$CA" "$CB" 2>/dev/null
grep -q 'queued job(s) answered without being run' "$T/shim.log" && pass "queued job handed back unrun: $(grep -o 'shutting down: [^"]*' "$T/shim.log")" || fail "no log of the unrun queued job"
grep -q 'bring-up stopped: the shim is shutting down","func":"[^"]*","id":"ca"' "$T/shim.log" && pass "the running bring-up (ca) stopped between steps" || fail "the running bring-up went on"
grep '"id":"cb"' "$T/shim.log" | grep -q 'bring-up' && fail "a bring-up of the queued cb ran"
grep -q '"id":"ca"' "$T/agent.log" && fail "ca reached the agent after SIGTERM" || pass "ca never reached the agent"
grep -q '"id":"cb"' "$T/agent.log" && fail "cb reached the agent" || pass "cb never reached the agent"
grep -q '^OK' "$T/cb.out" && fail "cb: $(cat "$T/cb.out")" || pass "cb not created: $(head -c 120 "$T/cb.out")"
grep -q '^OK' "$T/ca.out" && fail "ca: $(cat "$T/ca.out")" || pass "ca not created: $(head -c 120 "$T/ca.out")"
if [ -s "$T/shim.stderr" ] && grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error|fatal' "$T/shim.stderr"; then
	fail "the shim reported: $(head -5 "$T/shim.stderr")"
fi
finish
