#!/bin/bash
# shim_fault_client.sh: hostile and heavy clients, and the shim itself dying.
#  - a client parks 50 Waits and a slow call (Pids on a frozen agent), then closes its socket:
#    the shim survives, later calls work, its open-fd count returns to the baseline;
#  - 1000 idle connections stay open while another client works: its calls are answered
#    (latency p50/p99 printed) and none of the idle ones is dropped;
#  - SIGKILL of the shim with containers running, then `vmshim delete` with the same
#    -namespace/-id/-socket: socket and pid file removed, the DeleteResponse JSON printed with
#    exit_status 137 and an RFC 3339 exited_at, exit status 0 (docs/CONTRACT.md 2, 5.4, 5.7).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins "$FCLIENT"
setup
write_config '"handshake_timeout_ms": 2000, "max_connections": 1100,'
start_agent
start_shim
wait_connected 1 || die "no link to the agent"
sleep 0.2
base=$(open_fds "$SHIM_PID")
echo "baseline: $base open fds, RSS $(rss_kb "$SHIM_PID") KiB"

make_bundle b1 'sleep 1000'
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\"}" '^OK'
expect_call "Start c1" Start '{"id":"c1"}' '^OK'
with_task=$(open_fds "$SHIM_PID")

# --- a client vanishes with 50 Waits and a slow call in flight ------------------------------
kill -STOP "$AGENT_PID"
out=$("$FCLIENT" abandon "$T/shim.sock" c1 50) && pass "abandon: $out" || fail "abandon: $out"
kill -CONT "$AGENT_PID"
alive "abandon"
expect_call "abandon: Pids afterwards" Pids '{"id":"c1"}' '"processes":\[\{"pid":[1-9]'
expect_call "abandon: State afterwards" State '{"id":"c1"}' '"status":"RUNNING"'
check_fds "abandon" "$with_task"

# --- 1000 idle connections ------------------------------------------------------------------
rss0=$(rss_kb "$SHIM_PID")
out=$("$FCLIENT" idle "$T/shim.sock" 1000 2000 c1) && pass "idle: $(echo $out)" || fail "idle: $(echo $out)"
echo "RSS with 1000 connections open: up to $(rss_kb "$SHIM_PID") KiB (idle: $rss0 KiB)"
alive "idle"
check_fds "idle" "$with_task"

# --- SIGKILL of the shim, then vmshim delete ------------------------------------------------
make_bundle b2 'sleep 1000'
expect_call "Create c2" Create "{\"id\":\"c2\",\"bundle\":\"$T/b2\"}" '^OK'
expect_call "Start c2" Start '{"id":"c2"}' '^OK'
[ -S "$T/shim.sock" ] && [ -f "$T/shim.pid" ] && pass "socket and pid file present while serving" || fail "no socket or pid file: $(ls "$T")"
kill -9 "$SHIM_PID"
wait "$SHIM_PID" 2>/dev/null
SHIM_PID=
out=$("$SHIM" -namespace faults -id g1 -socket "$T/shim.sock" -json delete 2>"$T/delete.err")
rc=$?
[ $rc = 0 ] && pass "vmshim delete exited 0" || fail "vmshim delete exited $rc: $(cat "$T/delete.err")"
if printf '%s\n' "$out" | grep -Eq '^\{"pid":0,"exit_status":137,"exited_at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z"\}$'; then
	pass "DeleteResponse: $out"
else
	fail "DeleteResponse: '$out'"
fi
[ ! -e "$T/shim.sock" ] && [ ! -e "$T/shim.pid" ] && pass "socket and pid file removed" || fail "left behind: $(ls "$T" | grep shim)"
out=$("$SHIM" -namespace faults -id g1 -socket "$T/shim.sock" -json delete 2>&1)
[ $? = 0 ] && pass "a second delete is harmless: $out" || fail "second delete: $out"
finish
