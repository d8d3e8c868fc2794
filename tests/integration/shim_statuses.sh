#!/bin/bash
# shim_statuses.sh: answers a client can act on, in the races an outside probe found.
#   dupsid   a second request on a stream id still in flight answers INVALID_ARGUMENT at once;
#            the first (a parked Wait) is still answered on that id
#   start    a Start dispatched while a Delete of the same process is in flight answers
#            NOT_FOUND, never "already started"
#   kill     a Kill dispatched while the container's Create is in flight answers
#            FAILED_PRECONDITION "being created"; the Create then succeeds
#   logs     3000-byte ids, paths and exec ids in requests: no log line of the shim (or of
#            the local VM's agent) carries more than 255 bytes of any of them
# The races are made certain, not likely: both requests go back to back on one connection
# (the shim dispatches them in order) while the agent is stopped (SIGSTOP), so the first one
# is still in flight when the second is dispatched.
. "$(dirname "$0")/lib.sh"
need_bins
setup
start_agent
start_shim

# pair_stopped OUT WANT M1 J1 M2 J2: with the agent stopped, send M1 then M2 on one connection;
# wait for the line matching WANT (M2's answer, given while M1 waits for the agent), resume
# the agent, collect M1's answer. The raw client's own 10 s response timeout catches a hang.
pair_stopped() {
	out=$1 want=$2
	shift 2
	kill -STOP "$AGENT_PID"
	"$RAW" pair "$T/shim.sock" "$@" >"$out" 2>&1 &
	pp=$!
	i=0
	while ! grep -q "^$want" "$out" && kill -0 "$pp" 2>/dev/null && [ $i -lt 400 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -CONT "$AGENT_PID"
	wait "$pp"
}

make_bundle sleeper 'sleep 300'
expect_call "Create w" Create "{\"id\":\"w\",\"bundle\":\"$T/sleeper\"}" '^OK'
expect_call "Start w" Start '{"id":"w"}' '^OK'
if out=$("$RAW" dupsid "$T/shim.sock" w 2>&1); then
	pass "dupsid: $(echo $out)"
else
	fail "dupsid: $(echo $out)"
fi
expect_call "Delete w" Delete '{"id":"w"}' '^OK'

# Start loses to an in-flight Delete.
expect_call "Create s" Create "{\"id\":\"s\",\"bundle\":\"$T/sleeper\"}" '^OK'
pair_stopped "$T/start.out" "Start:" Delete '{"id":"s"}' Start '{"id":"s"}'
if grep -q '^Start: NOT_FOUND' "$T/start.out" && grep -q '^Delete: OK' "$T/start.out"; then
	pass "Start during Delete: $(tr '\n' ';' <"$T/start.out")"
else
	fail "Start during Delete: $(tr '\n' ';' <"$T/start.out") (want Start NOT_FOUND, Delete OK)"
fi

# Kill while the Create is in flight.
pair_stopped "$T/kill.out" "Kill:" Create "{\"id\":\"k\",\"bundle\":\"$T/sleeper\"}" \
	Kill '{"id":"k","signal":9}'
if grep -q '^Kill: FAILED_PRECONDITION .*being created' "$T/kill.out" &&
	grep -q '^Create: OK' "$T/kill.out"; then
	pass "Kill during Create: $(tr '\n' ';' <"$T/kill.out")"
else
	fail "Kill during Create: $(tr '\n' ';' <"$T/kill.out") (want Kill FAILED_PRECONDITION being created, Create OK)"
fi
expect_call "State k after its Create" State '{"id":"k"}' '"status":"CREATED"'
expect_call "Delete k" Delete '{"id":"k"}' '^OK'

# Peer strings in log lines are cut.
long=$(printf '%3000s' '' | tr ' ' x)
mkdir -p "$T/$long" 2>/dev/null || true
expect_call "Create with a 3000-byte id" Create "{\"id\":\"$long\",\"bundle\":\"$T/sleeper\"}" '^INVALID_ARGUMENT'
expect_call "Create with a 3000-byte bundle" Create "{\"id\":\"lb\",\"bundle\":\"/$long/$long\",\"stdout\":\"/$long\"}" '^INVALID_ARGUMENT'
expect_call "State of a 3000-byte id" State "{\"id\":\"$long\"}" '^(NOT_FOUND|INVALID_ARGUMENT)'
expect_call "Kill of a 3000-byte exec id" Kill "{\"id\":\"w\",\"exec_id\":\"$long\",\"signal\":9}" '^(NOT_FOUND|INVALID_ARGUMENT)'
for f in "$T/shim.log" "$T/agent.log"; do
	max=$(awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$f")
	if grep -Eq 'x{256}' "$f"; then
		fail "$(basename "$f"): a peer string of more than 255 bytes in a log line (longest line $max bytes)"
	else
		pass "$(basename "$f"): no peer string over 255 bytes (longest line $max bytes)"
	fi
done
finish
