#!/bin/bash
# shim_limits_accept.sh: the accept path's limits (docs/CONTRACT.md 3 and 5.4: a slow or silent
# client must never hold up accepting others).
# - handshake_timeout_ms: a silent or half-frame client is closed after it; a client whose
#   first frame the RPC layer rejected (or ignored) is active and stays served.
# - max_connections 10: the 11th connection is refused and logged; after one closes a new one
#   is accepted.
# - EMFILE: under `ulimit -n 64`, 200 connection attempts: refusals are logged, the accept
#   thread's CPU time stays low (it does not spin on a readable listening socket it cannot
#   accept from), and once the connections close a new client is answered.
. "$(dirname "$0")/lib.sh"
LC=$B/tests/integration/shim_limits_client
need_bins "$LC"
command -v prlimit >/dev/null || skip "prlimit is missing"
setup
start_agent

# start_shim_with PREFIX...: like lib.sh's start_shim, under a command prefix (e.g. prlimit).
start_shim_with() {
	"$@" "$SHIM" serve -socket "$T/shim.sock" -config "$T/config.json" -log "$T/shim.log" 2>>"$T/shim.stderr" &
	SHIM_PID=$!
	PIDS="$PIDS $SHIM_PID"
	wait_socket "$T/shim.sock" "$SHIM_PID" || die "the shim did not come up (see $T/shim.log)"
}

# --- handshake_timeout_ms ---
write_config '"handshake_timeout_ms": 400,'
start_shim
if out=$("$LC" handshake "$T/shim.sock" 400); then
	printf '%s\n' "$out"
	pass "handshake_timeout_ms: idle and half-frame clients closed, active ones kept"
else
	printf '%s\n' "$out"
	fail "handshake_timeout_ms"
fi
grep -q 'no complete frame within 400 ms' "$T/shim.log" && pass "handshake close logged" || fail "no handshake log line"
stop_shim

# --- max_connections ---
write_config '"max_connections": 10,'
start_shim
if out=$("$LC" maxconn "$T/shim.sock" 10); then
	printf '%s\n' "$out"
	pass "max_connections 10"
else
	printf '%s\n' "$out"
	fail "max_connections 10"
fi
grep -q 'refused a connection from pid [0-9]* uid [0-9]*: max_connections (10) reached' "$T/shim.log" &&
	pass "refusal logged: $(grep -o 'refused a connection[^"]*max_connections[^"]*' "$T/shim.log" | head -1)" ||
	fail "no max_connections refusal in the log"
stop_shim

# --- EMFILE: 64 descriptors, 200 connection attempts ---
write_config '"handshake_timeout_ms": 10000,'
start_shim_with prlimit --nofile=64:64
tid=
for t in /proc/"$SHIM_PID"/task/*; do
	[ "$(cat "$t/comm" 2>/dev/null)" = vmshim-accept ] && tid=${t##*/}
done
[ -n "$tid" ] || die "no vmshim-accept thread in /proc/$SHIM_PID/task"
ticks() { awk '{print $14 + $15}' "/proc/$SHIM_PID/task/$tid/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks)
t0=$(date +%s%N)
"$LC" hold "$T/shim.sock" 200 2 >"$T/hold.out" 2>&1 &
HOLD=$!
PIDS="$PIDS $HOLD"
# Sample while the 200 connections are being refused and held.
sleep 1.5
c1=$(ticks)
t1=$(date +%s%N)
wait "$HOLD"
cat "$T/hold.out"
used=$((c1 - c0))
wall_ms=$(((t1 - t0) / 1000000))
pct=$((used * 1000 * 100 / hz / wall_ms))
echo "accept thread $tid: $used ticks (${hz} Hz) of CPU in $wall_ms ms: ${pct}% of one core"
[ "$pct" -lt 50 ] && pass "the accept thread did not spin (${pct}% < 50% of a core)" || fail "the accept thread used ${pct}% of a core"
grep -q 'accept: Too many open files: refusing connections' "$T/shim.log" && pass "EMFILE logged" || fail "no EMFILE log line"
grep -Eq 'closed by the shim' "$T/hold.out" && ! grep -q ' 0 closed by the shim' "$T/hold.out" &&
	pass "connections over the limit were refused (closed), not left hanging" ||
	fail "no refused connection: $(cat "$T/hold.out")"
ok=0
for i in $(seq 100); do
	if "$RAW" call "$T/shim.sock" Connect '{}' 2>/dev/null | grep -q '^OK'; then ok=1; break; fi
	sleep 0.05
done
[ $ok = 1 ] && pass "recovered: a new client was answered (attempt $i)" || fail "no answer after the connections closed"
out=$("$LC" hold "$T/shim.sock" 20 0)
echo "$out" | grep -q ' 20 answered' && pass "after the episode: $out" || fail "after the episode: $out"
grep -q 'descriptors available again' "$T/shim.log" && pass "end of the episode logged: $(grep -o 'descriptors available again[^"]*' "$T/shim.log" | head -1)" || fail "no end-of-episode log line"
kill -0 "$SHIM_PID" && pass "the shim survived" || fail "the shim died"
finish
