#!/bin/bash
# shim_tasks.sh: every Task method end to end on the real binaries (vmshim + the local-VM
# agent), with real FIFOs, checking stdout content, state transitions and the event stream.
. "$(dirname "$0")/lib.sh"
need_bins
setup
start_agent
start_shim

"$RAW" subscribe "$T/shim.sock" 200 >"$T/events" 2>&1 &
SUB_PID=$!
PIDS="$PIDS $SUB_PID"
for i in $(seq 100); do grep -q subscribed "$T/events" && break; sleep 0.05; done

# c1: `cat; echo done`, stdin and stdout are FIFOs, stderr a regular file.
make_bundle b1 'cat; echo done'
mkfifo "$T/c1.in" "$T/c1.out"
: >"$T/c1.err"
cat "$T/c1.out" >"$T/c1.captured" &
PIDS="$PIDS $!"
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\",\"stdin\":\"$T/c1.in\",\"stdout\":\"$T/c1.out\",\"stderr\":\"$T/c1.err\"}" '^OK \{"pid":[1-9]'
expect_call "Create c1 again" Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\"}" '^ALREADY_EXISTS'
# A bundle may set only the allow-listed io.vmshim.* annotations, even when joining a shim.
make_bundle bsec 'true'
sed -i 's/^ "root"/ "annotations": {"io.vmshim.allowed_uids": "0,1000"},\n "root"/' "$T/bsec/config.json"
expect_call "Create with io.vmshim.allowed_uids refused" Create "{\"id\":\"csec\",\"bundle\":\"$T/bsec\"}" '^INVALID_ARGUMENT .*annotation io.vmshim.allowed_uids: may not be set from a bundle'
expect_call "... and not created" State '{"id":"csec"}' '^NOT_FOUND'
expect_call "State c1 (created)" State '{"id":"c1"}' '"status":"CREATED"'
exec 3>"$T/c1.in"
expect_call "Start c1" Start '{"id":"c1"}' '^OK \{"pid":[1-9]'
expect_call "Start c1 twice" Start '{"id":"c1"}' '^FAILED_PRECONDITION'
expect_call "State c1 (running)" State '{"id":"c1"}' '"status":"RUNNING"'
echo "line one" >&3
expect_call "Pids c1" Pids '{"id":"c1"}' '"processes":\[\{"pid":[1-9]'
expect_call "Stats c1" Stats '{"id":"c1"}' '"stats":\{'
expect_call "Pause c1" Pause '{"id":"c1"}' '^OK'
expect_call "State c1 (paused)" State '{"id":"c1"}' '"status":"PAUSED"'
expect_call "Resume c1" Resume '{"id":"c1"}' '^OK'
expect_call "State c1 (resumed)" State '{"id":"c1"}' '"status":"RUNNING"'
expect_call "Update c1" Update '{"id":"c1","resources":{}}' '^OK'
expect_call "ResizePty without a terminal" ResizePty '{"id":"c1","width":80,"height":24}' '^FAILED_PRECONDITION'
expect_call "Delete a running process" Delete '{"id":"c1"}' '^FAILED_PRECONDITION'
expect_call "Connect c1" Connect '{"id":"c1"}' '"shim_pid":'"$SHIM_PID"',"task_pid":[1-9][0-9]*,"version":"'

# An exec with stdout to a file.
: >"$T/e1.out"
expect_call "Exec e1" Exec "{\"id\":\"c1\",\"exec_id\":\"e1\",\"stdout\":\"$T/e1.out\",\"spec\":{\"args\":[\"sh\",\"-c\",\"echo from exec; exit 7\"],\"env\":[\"PATH=/usr/bin:/bin\"],\"cwd\":\"/\"}}" '^OK \{\}'
expect_call "Exec e1 again" Exec "{\"id\":\"c1\",\"exec_id\":\"e1\",\"spec\":{\"args\":[\"true\"]}}" '^ALREADY_EXISTS'
expect_call "State e1 (created)" State '{"id":"c1","exec_id":"e1"}' '"status":"CREATED"'
expect_call "Start e1" Start '{"id":"c1","exec_id":"e1"}' '^OK \{"pid":[1-9]'
expect_call "Wait e1" Wait '{"id":"c1","exec_id":"e1"}' '"exit_status":7'
grep -qx "from exec" "$T/e1.out" && pass "exec stdout reached the file" || fail "exec stdout: '$(cat "$T/e1.out")'"
expect_call "Delete e1" Delete '{"id":"c1","exec_id":"e1"}' '"exit_status":7'
expect_call "State e1 (deleted)" State '{"id":"c1","exec_id":"e1"}' '^NOT_FOUND'

# CloseIO ends stdin (half-close): cat sees EOF, "done" still flows out on stdout.
expect_call "CloseIO c1" CloseIO '{"id":"c1","stdin":true}' '^OK'
expect_call "Wait c1" Wait '{"id":"c1"}' '"exit_status":0,"exited_at":"20'
exec 3>&-
for i in $(seq 100); do grep -q done "$T/c1.captured" 2>/dev/null && break; sleep 0.05; done
if [ "$(cat "$T/c1.captured")" = "$(printf 'line one\ndone')" ]; then
	pass "c1 stdout through the FIFO: $(tr '\n' '|' <"$T/c1.captured")"
else
	fail "c1 stdout: '$(cat "$T/c1.captured")'"
fi
expect_call "State c1 (stopped)" State '{"id":"c1"}' '"exit_status":0,.*"status":"STOPPED"'
expect_call "Kill a stopped process" Kill '{"id":"c1","signal":9}' '^NOT_FOUND'
expect_call "Delete c1" Delete '{"id":"c1"}' '^OK \{"exit_status":0,"exited_at":"20[^"]*","pid":[1-9]'
expect_call "State c1 (deleted)" State '{"id":"c1"}' '^NOT_FOUND'

# c2: killed; Wait answers 137; Kill with a bad signal is refused.
make_bundle b2 'sleep 1000'
expect_call "Create c2" Create "{\"id\":\"c2\",\"bundle\":\"$T/b2\"}" '^OK'
expect_call "Start c2" Start '{"id":"c2"}' '^OK'
expect_call "Kill c2 signal 0" Kill '{"id":"c2","signal":0}' '^INVALID_ARGUMENT'
expect_call "Kill c2" Kill '{"id":"c2","signal":9}' '^OK'
expect_call "Wait c2" Wait '{"id":"c2"}' '"exit_status":137'
expect_call "Delete c2" Delete '{"id":"c2"}' '"exit_status":137'

# Ids: one rule on both sides (common/protocol.c). The longest id runs end to end; one byte
# more is refused by the shim itself, before the agent is asked.
id128=$(printf '%0128d' 0)
expect_call "Create a 128-byte id" Create "{\"id\":\"$id128\",\"bundle\":\"$T/b2\"}" '^OK'
expect_call "Delete the 128-byte id" Delete "{\"id\":\"$id128\"}" '^OK'
expect_call "Create a 200-byte id" Create "{\"id\":\"$(printf '%0200d' 0)\",\"bundle\":\"$T/b2\"}" \
	'^INVALID_ARGUMENT payload\.id: longer than 128 bytes'
expect_call "Exec with a space in its id" Exec "{\"id\":\"$id128\",\"exec_id\":\"a b\",\"spec\":{\"args\":[\"true\"]}}" \
	'^INVALID_ARGUMENT payload\.exec_id: invalid character 0x20'

# Shutdown without `now` while a task is left: the shim stays until the last Delete.
make_bundle b3 'exit 0'
expect_call "Create c3" Create "{\"id\":\"c3\",\"bundle\":\"$T/b3\"}" '^OK'
expect_call "Shutdown (tasks left)" Shutdown '{"id":"c3"}' '^OK'
sleep 0.2
kill -0 "$SHIM_PID" 2>/dev/null && pass "the shim waits for the last task" || fail "the shim exited with a task left"
expect_call "Delete c3 (never started)" Delete '{"id":"c3"}' '^OK'
for i in $(seq 100); do kill -0 "$SHIM_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$SHIM_PID" 2>/dev/null && fail "the shim did not exit after the last Delete" || pass "the shim exited after the last Delete"
[ -e "$T/shim.sock" ] && fail "socket left behind" || pass "socket removed on exit"

# Events, in containerd's order, as the subscriber saw them.
wait "$SUB_PID" 2>/dev/null
got=$(grep '^/tasks' "$T/events" | tr '\n' ' ')
want="/tasks/create /tasks/start /tasks/paused /tasks/resumed /tasks/exec-added /tasks/exec-started /tasks/exit /tasks/delete /tasks/exit /tasks/delete /tasks/create /tasks/start /tasks/exit /tasks/delete /tasks/create /tasks/delete "
if [ "${got#"$want"}" != "$got" ]; then
	pass "events in order: $got"
else
	fail "events: got '$got', want prefix '$want'"
fi
finish
