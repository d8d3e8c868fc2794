#!/bin/bash
# shim_protobuf.sh: the Task API in protobuf, as stock containerd sends it, on the real shim and
# the local-VM agent: the lifecycle (Create/Start/State/Exec/Pids/Stats/Kill/Wait/Delete) with
# every answer a protobuf Response, the bad-input rows (limits, unknown methods, malformed
# bytes) answered in protobuf on a connection that stays usable, JSON still served beside it,
# and every event forwarded to a fake containerd (TTRPC_ADDRESS) in containerd's order.
. "$(dirname "$0")/lib.sh"
need_bins
PB=$B/tests/integration/pb_client
[ -x "$PB" ] || skip "pb_client not built"
setup
start_agent
write_config '"max_message_bytes": 65536,'

"$PB" events "$T/ctd.sock" "$T/forwarded" >>"$T/ctd.log" 2>&1 &
PIDS="$PIDS $!"
wait_path "$T/ctd.sock" || die "the fake containerd did not listen"
export TTRPC_ADDRESS="$T/ctd.sock"
start_shim
unset TTRPC_ADDRESS

pcall() { "$PB" call "$T/shim.sock" "$@" 2>&1; }
expect_pb() {
	out=$(pcall "$2" "$3")
	if printf '%s\n' "$out" | grep -Eq -- "$4"; then
		pass "$1: $out"
	else
		fail "$1: got '$out', want /$4/"
	fi
}

out=$("$PB" badinput "$T/shim.sock" 65536 2>&1)
printf '%s\n' "$out"
printf '%s\n' "$out" | tail -1 | grep -q '^PASS' && pass "bad input in protobuf" || fail "bad input in protobuf"
grep -q 'rejected (protobuf)' "$T/shim.log" && pass "rejected requests are logged" ||
	fail "no debug line for rejected protobuf requests"

# c1: `exit 3`, no stdio.
make_bundle b1 'exit 3'
expect_pb "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\"}" '^OK \{"pid":[1-9]'
expect_pb "State c1 (created)" State '{"id":"c1"}' '"status":"CREATED"'
expect_call "State c1 in JSON too" State '{"id":"c1"}' '"status":"CREATED"'
expect_pb "Start c1" Start '{"id":"c1"}' '^OK \{"pid":[1-9]'
expect_pb "Wait c1" Wait '{"id":"c1"}' '^OK \{"exit_status":3,"exited_at":"20[0-9-]+T[0-9:.]+Z"\}'
expect_pb "State c1 (stopped)" State '{"id":"c1"}' '"status":"STOPPED".*"exit_status":3,"exited_at":"20'
expect_pb "Delete c1" Delete '{"id":"c1"}' '^OK \{"pid":[1-9][0-9]*,"exit_status":3,"exited_at":"20'
expect_pb "State c1 (deleted)" State '{"id":"c1"}' '^NOT_FOUND'

# c2: a long-running init, an exec with an OCI Process spec (an Any of JSON), SIGKILL.
make_bundle b2 'sleep 60'
: >"$T/e1.out"
expect_pb "Create c2" Create "{\"id\":\"c2\",\"bundle\":\"$T/b2\"}" '^OK \{"pid":[1-9]'
expect_pb "Start c2" Start '{"id":"c2"}' '^OK \{"pid":[1-9]'
expect_pb "State c2 (running)" State '{"id":"c2"}' '"status":"RUNNING"'
expect_pb "Pids c2" Pids '{"id":"c2"}' '^OK \{"processes":\[\{"pid":[1-9]'
expect_pb "Stats c2 (cgroups Metrics)" Stats '{"id":"c2"}' '^OK \{"stats":\{.*"pids":\{"current":[1-9]'
expect_pb "Connect c2" Connect '{"id":"c2"}' '"shim_pid":'"$SHIM_PID"',"task_pid":[1-9][0-9]*,"version":"'
expect_pb "Exec e1" Exec "{\"id\":\"c2\",\"exec_id\":\"e1\",\"stdout\":\"$T/e1.out\",\"spec\":{\"args\":[\"sh\",\"-c\",\"echo from exec; exit 7\"],\"env\":[\"PATH=/usr/bin:/bin\"],\"cwd\":\"/\"}}" '^OK \{\}'
expect_pb "Exec without a spec" Exec '{"id":"c2","exec_id":"e2"}' '^INVALID_ARGUMENT payload.spec: missing'
expect_pb "Start e1" Start '{"id":"c2","exec_id":"e1"}' '^OK \{"pid":[1-9]'
expect_pb "Wait e1" Wait '{"id":"c2","exec_id":"e1"}' '"exit_status":7'
grep -qx "from exec" "$T/e1.out" && pass "exec stdout reached the file" || fail "exec stdout: '$(cat "$T/e1.out")'"
expect_pb "Delete e1" Delete '{"id":"c2","exec_id":"e1"}' '"exit_status":7'
expect_pb "Update c2" Update '{"id":"c2","resources":{"pids":{"limit":100}}}' '^OK'
expect_pb "Kill c2 without a signal" Kill '{"id":"c2"}' '^INVALID_ARGUMENT'
expect_pb "Kill c2" Kill '{"id":"c2","signal":9}' '^OK \{\}'
expect_pb "Wait c2" Wait '{"id":"c2"}' '"exit_status":137'
expect_pb "Delete c2" Delete '{"id":"c2"}' '"exit_status":137'

# containerd's order, every event in the shim's namespace.
want="/tasks/create /tasks/start /tasks/exit /tasks/delete /tasks/create /tasks/start /tasks/exec-added /tasks/exec-started /tasks/exit /tasks/delete /tasks/exit /tasks/delete"
got=
for i in $(seq 200); do
	got=$(sed -n 's/.*"topic":"\([^"]*\)".*/\1/p' "$T/forwarded" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')
	[ "$got" = "$want" ] && break
	sleep 0.05
done
[ "$got" = "$want" ] && pass "events forwarded in order: $got" || fail "forwarded: '$got', want '$want'"
grep -c '"namespace":"default"' "$T/forwarded" | grep -qx 12 && pass "namespace on every envelope" ||
	fail "namespace: $(head -2 "$T/forwarded")"
grep -q '"topic":"/tasks/exit".*"event":{"container_id":"c1","id":"c1","pid":[1-9][0-9]*,"exit_status":3,"exited_at":"20' "$T/forwarded" &&
	pass "TaskExit carries its fields" || fail "TaskExit: $(grep /tasks/exit "$T/forwarded" | head -1)"

stop_shim
[ "$FAILS" -eq 0 ] || { echo "FAIL: $FAILS check(s) failed"; exit 1; }
echo "PASS"
