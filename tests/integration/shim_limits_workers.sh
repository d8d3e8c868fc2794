#!/bin/bash
# shim_limits_workers.sh: the worker pool's bound and parked Waits (docs/CONTRACT.md 4 and 5.4).
# - workers 1 (queue 64 per worker): with the agent SIGSTOPped every guest call hangs, so the
#   worker is stuck and 64 Pids fill the queue; the next call is answered RESOURCE_EXHAUSTED at
#   once, not queued; after SIGCONT every queued call is answered.
# - Waits parked by a client that disconnects are freed when its connection closes (logged at
#   debug with their number), not kept until the process exits: 10 rounds of 1000.
. "$(dirname "$0")/lib.sh"
LC=$B/tests/integration/shim_limits_client
need_bins "$LC"
setup
start_agent
write_config '"workers": 1,'
start_shim
for i in $(seq 100); do grep -q 'connected to agent' "$T/shim.log" && break; sleep 0.05; done

make_bundle b1 'sleep 1000'
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\"}" '^OK'
expect_call "Start c1" Start '{"id":"c1"}' '^OK'

kill -STOP "$AGENT_PID"
"$LC" queuefill "$T/shim.sock" c1 65 "$T/exhausted" >"$T/fill.out" 2>&1 &
FILL=$!
PIDS="$PIDS $FILL"
for i in $(seq 100); do [ -s "$T/exhausted" ] && break; sleep 0.05; done
expect_call "State while the queue is full (loop thread)" State '{"id":"c1"}' '"status":"RUNNING"'
kill -CONT "$AGENT_PID"
wait "$FILL" && pass "queue full: $(tr '\n' ' ' <"$T/fill.out")" || fail "queue full: $(tr '\n' ' ' <"$T/fill.out")"
expect_call "Pids after the agent resumed" Pids '{"id":"c1"}' '^OK'

rss() { awk '/^VmRSS/ {print $2}' "/proc/$SHIM_PID/status"; }
rss0=$(rss)
for r in $(seq 10); do
	out=$("$LC" waitsdrop "$T/shim.sock" c1 1000) || fail "round $r: $out"
done
for i in $(seq 100); do
	[ "$(grep -c 'freed 1000 parked Wait' "$T/shim.log")" -ge 10 ] && break
	sleep 0.05
done
n=$(grep -c 'freed 1000 parked Wait' "$T/shim.log")
[ "$n" = 10 ] && pass "10 x 1000 Waits freed when their connections closed" || fail "freed-Waits log lines: $n, want 10"
rss1=$(rss)
echo "RSS ${rss0} kB before, ${rss1} kB after 10 x 1000 dropped Waits"
# Nothing is parked any more: the kill's exit answers no one, and Wait still works.
expect_call "Kill c1" Kill '{"id":"c1","signal":9}' '^OK'
expect_call "Wait c1" Wait '{"id":"c1"}' '"exit_status":137'
expect_call "Delete c1" Delete '{"id":"c1"}' '^OK'
finish
