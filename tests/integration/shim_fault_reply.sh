#!/bin/bash
# shim_fault_reply.sh: well-framed agent replies whose fields are missing or mistyped
# (fake_agent --mode malformed). Every field the shim reads from the guest is checked:
#   CreateContainer without a pid, or with a string pid -> INTERNAL naming the field, and the
#     container is not left behind (State NOT_FOUND, the agent told to DeleteProcess);
#   StartProcess with a boolean pid -> INTERNAL;
#   Pids with a string pid, Stats without a payload -> INTERNAL;
#   an exit event without exit_status -> the process still ends (Wait answers 255), logged.
# The shim stays up throughout.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins "$FAKE"
setup
cat >"$T/config.json" <<JSON
{
  "vm": {"vsock": "uds:$T/vm.sock", "connect_timeout_ms": 1000},
  "request_timeout_ms": 5000, "seccomp": false, "allowed_uids": [$(id -u)], "log_level": "info"
}
JSON
make_bundle b 'exit 0'
start_fake malformed
start_shim
wait_connected 1 || die "the shim did not connect to the fake agent"

expect_call "CreateContainer reply without pid" Create "{\"id\":\"nopid\",\"bundle\":\"$T/b\"}" \
	'^INTERNAL .*CreateContainer.pid: missing'
expect_call "... leaves no container" State '{"id":"nopid"}' '^NOT_FOUND'
grep -q 'request DeleteProcess id=nopid' "$T/fake.log" && pass "... and the agent was told to delete it" ||
	fail "no DeleteProcess for nopid (see $T/fake.log)"
expect_call "CreateContainer reply with a string pid" Create "{\"id\":\"strpid\",\"bundle\":\"$T/b\"}" \
	'^INTERNAL .*CreateContainer.pid'
expect_call "Create badstart" Create "{\"id\":\"badstart\",\"bundle\":\"$T/b\"}" '^OK'
expect_call "StartProcess reply with a boolean pid" Start '{"id":"badstart"}' \
	'^INTERNAL .*StartProcess.pid'
expect_call "Create ok" Create "{\"id\":\"ok\",\"bundle\":\"$T/b\"}" '^OK'
expect_call "Start ok" Start '{"id":"ok"}' '^OK'
expect_call "Pids reply with a string pid" Pids '{"id":"ok"}' '^INTERNAL .*pid'
expect_call "Stats reply without payload" Stats '{"id":"ok"}' '^INTERNAL'
expect_call "Create badexit" Create "{\"id\":\"badexit\",\"bundle\":\"$T/b\"}" '^OK'
expect_call "Start badexit" Start '{"id":"badexit"}' '^OK'
expect_call "Kill badexit (its exit event lacks exit_status)" Kill '{"id":"badexit","signal":9}' '^OK'
expect_call "Wait answers 255" Wait '{"id":"badexit"}' '"exit_status":255'
grep -q 'exit_status: missing: reporting exit status 255' "$T/shim.log" &&
	pass "the malformed exit event was logged" || fail "no log line for the malformed exit event"
alive "after malformed replies"
finish
