#!/bin/bash
# shim_cli_edge.sh: edges of the shim's command line (docs/CONTRACT.md, "Command line").
#   1. `delete` with a stale pid file whose pid now belongs to an unrelated live process (even
#      one whose name starts with "vmshim") kills nothing; a live shim's pid (it holds the pid
#      file's lock) is still killed.
#   2. Without -bundle, `start`/`serve` read the io.vmshim.* annotations of ./config.json (the
#      bundle directory is containerd's working directory for `shim start`).
#   3. `start` reports success only once start-up has fully succeeded: with the open-file
#      limit at every value from 4 to 24, `start` either exits 0 with a shim that answers, or
#      exits 1 with an error line (never exit 0 with a shim that died after listen()).
#      The shim must still be running after exit 0 (with so few descriptors it may refuse
#      connections: EMFILE).
. "$(dirname "$0")/lib.sh"
need_bins
setup
write_config

# 1. delete and pid reuse.
mkdir -p "$T/run"
cp "$(command -v sleep)" "$T/vmshim-impostor"
"$T/vmshim-impostor" 100 &
IMP=$!
PIDS="$PIDS $IMP"
sleep 0.1
echo "$IMP" >"$T/run/g1.pid"
out=$("$SHIM" -id g1 -socket "$T/run/g1.sock" -json delete 2>&1)
echo "$out" | grep -q '"exit_status":137' && pass "delete answered: $(echo "$out" | tail -1)" || fail "delete: $out"
kill -0 "$IMP" 2>/dev/null && pass "stale pid file: unrelated process $IMP ($(cat /proc/$IMP/comm)) not killed" || fail "delete killed unrelated process $IMP"
[ ! -e "$T/run/g1.pid" ] && pass "stale pid file removed" || fail "pid file left"
start_agent
"$SHIM" -id g2 -socket "$T/run/g2.sock" -config "$T/config.json" -log "$T/g2.log" start >/dev/null || fail "start g2"
pid2=$(cat "$T/run/g2.pid" 2>/dev/null)
PIDS="$PIDS $pid2"
"$SHIM" -id g2 -socket "$T/run/g2.sock" delete >/dev/null 2>&1
for i in $(seq 100); do kill -0 "$pid2" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid2" 2>/dev/null && fail "delete did not kill the live shim $pid2" || pass "delete killed the live shim $pid2 (it held the lock)"

# 2. annotations from ./config.json without -bundle (workers is not a key a bundle may set
#    unless the configuration allows it; the refusal is shim_cli.sh's).
write_config '"allowed_annotations": ["workers"],'
mkdir -p "$T/bundle"
echo '{"annotations": {"io.vmshim.workers": "many"}}' >"$T/bundle/config.json"
out=$(cd "$T/bundle" && timeout 10 "$SHIM" -config "$T/config.json" -socket "$T/run/g3.sock" start 2>&1)
st=$?
[ "$st" = 1 ] && echo "$out" | grep -q 'io.vmshim.workers: "many"' && pass "bad annotation in ./config.json rejected: $out" || fail "./config.json not read: exit $st: $out"
echo '{"annotations": {"io.vmshim.workers": "3"}}' >"$T/bundle/config.json"
out=$(cd "$T/bundle" && timeout 10 "$SHIM" -config "$T/config.json" -socket "$T/run/g4.sock" -log "$T/g4.log" start 2>&1)
pid4=$(cat "$T/run/g4.pid" 2>/dev/null)
[ -n "$pid4" ] && PIDS="$PIDS $pid4"
grep -q ', 3 workers' "$T/g4.log" && pass "io.vmshim.workers from ./config.json applied: $(grep -o '[0-9]* workers' "$T/g4.log")" || fail "workers not applied: $out; $(grep -o '[0-9]* workers' "$T/g4.log")"
[ -n "$pid4" ] && kill "$pid4"

# 3. readiness only after a fully successful start-up.
failed=0 ok=0
for n in $(seq 4 24); do
	rm -f "$T/run/lim.sock" "$T/run/lim.pid"
	out=$( (ulimit -n "$n" && exec "$SHIM" -config "$T/config.json" -socket "$T/run/lim.sock" -log "$T/lim.log" start) 2>&1)
	st=$?
	pid=$(cat "$T/run/lim.pid" 2>/dev/null)
	[ -n "$pid" ] && PIDS="$PIDS $pid"
	if [ "$st" = 0 ]; then
		sleep 0.3
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			ok=$((ok + 1))
		else
			fail "nofile $n: start exited 0 ('$out') but the shim is gone: $(grep -o '"level":"error","msg":"[^"]*' "$T/lim.log" | tail -1)"
		fi
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
		for i in $(seq 100); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	elif [ "$st" = 1 ] && echo "$out" | grep -q '^vmshim: '; then
		failed=$((failed + 1))
		last=$out
	else
		fail "nofile $n: start exit $st: '$out'"
	fi
done
[ "$failed" -gt 0 ] && [ "$ok" -gt 0 ] && pass "every start either served ($ok) or failed with an error ($failed, e.g. '$last')" || fail "ok $ok failed $failed"
finish
