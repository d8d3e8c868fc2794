#!/bin/bash
# shim_cli.sh: the command line and the configuration checks (docs/CONTRACT.md 2, 3).
# --version/--help; bad usage exits 2; bad configs exit 1 with one line naming the file, the
# line or the key; `start` daemonizes and prints unix:///PATH once the socket accepts, a second
# `start` prints the same address and starts nothing; `delete` kills a leftover shim, removes
# its socket and pid file and prints a DeleteResponse; the socket is 0600 in a 0700 dir.
. "$(dirname "$0")/lib.sh"
need_bins
setup

# expect_exit WHAT STATUS PATTERN CMD...: exit status and the stderr/stdout line must match.
expect_exit() {
	what=$1 want=$2 pat=$3
	shift 3
	out=$("$@" 2>&1)
	st=$?
	if [ "$st" = "$want" ] && printf '%s\n' "$out" | grep -Eq -- "$pat"; then
		pass "$what: exit $st: $(printf '%s' "$out" | head -1)"
	else
		fail "$what: exit $st (want $want): '$out' (want /$pat/)"
	fi
}

expect_exit "--version" 0 '^vmshim [0-9]+\.[0-9]+' "$SHIM" --version
expect_exit "--help" 0 'start \| delete \| serve' "$SHIM" --help
expect_exit "no command" 2 '^vmshim: missing command' "$SHIM" -socket "$T/x.sock"
expect_exit "unknown command" 2 '^vmshim: unknown command "bogus"' "$SHIM" bogus
expect_exit "unknown flag" 2 '^vmshim: unknown flag -frobnicate' "$SHIM" -frobnicate serve
expect_exit "flag without value" 2 'needs a value' "$SHIM" serve -socket

printf '{\n  "workers": 2,\n  "vm": {"vsock": "uds:/x"\n}\n' >"$T/bad1.json"
expect_exit "config syntax error" 1 "^vmshim: config $T/bad1.json: line [0-9]+: " \
	"$SHIM" -config "$T/bad1.json" -socket "$T/x.sock" serve
echo '{"vm": {"vsock": "uds:/x", "colour": "blue"}}' >"$T/bad2.json"
expect_exit "unknown key" 1 "^vmshim: config $T/bad2.json: vm.colour: unknown key" \
	"$SHIM" -config "$T/bad2.json" -socket "$T/x.sock" serve
echo '{"vm": {"vsock": "uds:/x"}, "workers": "four"}' >"$T/bad3.json"
expect_exit "wrong type" 1 "^vmshim: config $T/bad3.json: workers: expected an integer" \
	"$SHIM" -config "$T/bad3.json" -socket "$T/x.sock" serve
echo '{"vm": {"vsock": "tcp:1.2.3.4"}}' >"$T/bad4.json"
expect_exit "bad vm.vsock" 1 "^vmshim: config $T/bad4.json: vm.vsock: \"tcp:1.2.3.4\": expected" \
	"$SHIM" -config "$T/bad4.json" -socket "$T/x.sock" serve
expect_exit "missing -config file" 1 "^vmshim: config $T/nope.json: No such file" \
	"$SHIM" -config "$T/nope.json" -socket "$T/x.sock" serve
mkdir -p "$T/bundle"
echo '{"annotations": {"io.vmshim.vm.cpus": "many"}}' >"$T/bundle/config.json"
write_config
expect_exit "bad annotation" 1 'annotation io.vmshim.vm.cpus: "many" is not a valid' \
	"$SHIM" -config "$T/config.json" -bundle "$T/bundle" -socket "$T/x.sock" serve
echo '{"annotations": {"io.vmshim.seccomp": "false"}}' >"$T/bundle/config.json"
expect_exit "annotation a bundle may not set" 1 'annotation io.vmshim.seccomp: may not be set from a bundle' \
	"$SHIM" -config "$T/config.json" -bundle "$T/bundle" -socket "$T/x.sock" start

# start: daemonized, prints the address once the socket accepts.
start_agent
SOCK=$T/run/default/g1.sock
expect_exit "start" 0 "^unix://$SOCK\$" "$SHIM" -namespace default -id g1 -socket "$SOCK" \
	-config "$T/config.json" -log "$T/shim.log" start
pid1=$(cat "$T/run/default/g1.pid" 2>/dev/null)
[ -n "$pid1" ] && kill -0 "$pid1" && PIDS="$PIDS $pid1" && pass "daemon running, pid $pid1" || fail "no daemon"
call_sock() { "$RAW" call "$SOCK" "$@"; }
out=$(call_sock Connect '{}')
echo "$out" | grep -q "\"shim_pid\":$pid1" && pass "daemon answers: $out" || fail "daemon: $out"
ppid=$(awk '{print $4}' "/proc/$pid1/stat")
sid=$(awk '{print $6}' "/proc/$pid1/stat")
mysid=$(awk '{print $6}' /proc/$$/stat)
[ "$ppid" != "$$" ] && [ "$sid" != "$mysid" ] && [ "$sid" != "$pid1" ] && pass "double fork + setsid (ppid $ppid, session $sid)" || fail "ppid $ppid sid $sid"
[ "$(stat -c %a "$SOCK")" = 600 ] && pass "socket 0600" || fail "socket mode $(stat -c %a "$SOCK")"
[ "$(stat -c %a "$T/run/default")" = 700 ] && pass "socket dir 0700" || fail "dir mode $(stat -c %a "$T/run/default")"
expect_exit "start again" 0 "^unix://$SOCK\$" "$SHIM" -namespace default -id g1 -socket "$SOCK" \
	-config "$T/config.json" start
[ "$(cat "$T/run/default/g1.pid")" = "$pid1" ] && [ "$(pgrep -c -f "vmshim .*-socket $SOCK")" = 1 ] &&
	pass "second start started nothing" || fail "second start: $(pgrep -a -f "vmshim .*-socket $SOCK")"

# SIGTERM: orderly exit, socket and pid file removed.
kill -TERM "$pid1"
for i in $(seq 100); do kill -0 "$pid1" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid1" 2>/dev/null && fail "SIGTERM: still running" || pass "SIGTERM: exited"
[ ! -e "$SOCK" ] && [ ! -e "$T/run/default/g1.pid" ] && pass "socket and pid file removed" || fail "leftovers: $(ls "$T/run/default")"

# delete: kills a leftover shim and cleans up.
"$SHIM" -id g1 -socket "$SOCK" -config "$T/config.json" start >/dev/null || fail "restart"
pid2=$(cat "$T/run/default/g1.pid")
PIDS="$PIDS $pid2"
expect_exit "delete -json" 0 '^\{"pid":0,"exit_status":137,"exited_at":"20[0-9-]+T[0-9:.]+Z"\}$' \
	"$SHIM" -id g1 -socket "$SOCK" -json delete
for i in $(seq 100); do kill -0 "$pid2" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid2" 2>/dev/null && fail "delete: shim still running" || pass "delete killed the leftover shim"
[ ! -e "$SOCK" ] && [ ! -e "$T/run/default/g1.pid" ] && pass "delete removed socket and pid file" || fail "delete leftovers"
# By default a protobuf containerd.task.v2.DeleteResponse: pid 0 (absent), exit_status 137
# (field 2, varint 0x89 0x01), exited_at (field 3, a Timestamp of seconds and nanos).
hex=$("$SHIM" -id g1 -socket "$SOCK" delete 2>/dev/null | od -An -tx1 | tr -d ' \n')
case $hex in
1089011a??08*) pass "delete with nothing left: protobuf DeleteResponse ($hex)" ;;
*) fail "delete: not the expected protobuf DeleteResponse: $hex" ;;
esac

# The local VM (no vm.vsock): an agent that cannot be run, or exits before it answers, fails
# start with one line naming the step, and nothing is left running.
echo '{"vm": {"agent": "/nonexistent/vmshim-agent"}}' >"$T/local-missing.json"
expect_exit "local VM: agent missing" 1 '^vmshim: vm.launch local: vm.agent /nonexistent/vmshim-agent: No such file' \
	"$SHIM" -config "$T/local-missing.json" -socket "$T/lm.sock" start
printf '#!/bin/sh\necho agent says no >&2\nexit 3\n' >"$T/bad-agent"
chmod +x "$T/bad-agent"
echo "{\"vm\": {\"agent\": \"$T/bad-agent\"}}" >"$T/local-bad.json"
expect_exit "local VM: agent exits at once" 1 '^vmshim: vm.launch local: the agent exited with status 3 before it answered' \
	"$SHIM" -config "$T/local-bad.json" -socket "$T/lb.sock" -log "$T/lb.log" start
[ ! -e "$T/lb.sock" ] && [ ! -e "$T/lb.pid" ] && [ ! -e "$T/lb.d" ] &&
	pass "local VM failure: no socket, pid file or state left" || fail "local VM failure left: $(ls "$T")"
pgrep -f "vmshim .*-socket $T/lb.sock" >/dev/null && fail "local VM failure: a shim still runs" ||
	pass "local VM failure: no shim left running"
printf '#!/bin/sh\necho $$ >"%s"\nexec sleep 1000\n' "$T/mute.pid" >"$T/mute-agent"
chmod +x "$T/mute-agent"
echo "{\"vm\": {\"agent\": \"$T/mute-agent\", \"boot_timeout_ms\": 300}}" >"$T/local-mute.json"
expect_exit "local VM: agent never answers" 1 '^vmshim: vm.launch local: the agent did not answer within vm.boot_timeout_ms' \
	"$SHIM" -config "$T/local-mute.json" -socket "$T/lm2.sock" -log "$T/lm2.log" start
mpid=$(cat "$T/mute.pid" 2>/dev/null)
[ -n "$mpid" ] && ! kill -0 "$mpid" 2>/dev/null && pass "local VM: the agent that never answered ($mpid) was stopped" ||
	fail "local VM: the mute agent \"$mpid\" is left"
# A working one: zero configuration (the agent found on PATH), and the agent goes with the shim.
echo "{}" >"$T/empty.json"
PATH="$(dirname "$AGENT"):$PATH" expect_exit "local VM: start" 0 "^unix://$T/lv.sock\$" \
	"$SHIM" -config "$T/empty.json" -socket "$T/lv.sock" -log "$T/lv.log" start
lvpid=$(cat "$T/lv.pid")
apid=$(cat "$T/lv.d/agent.pid")
PIDS="$PIDS $lvpid $apid"
grep -q "agent.sock" "/proc/$apid/cmdline" && pass "local VM: agent $apid runs" || fail "local VM: no agent"
kill -TERM "$lvpid"
# The shim removes its state once the agent is reaped, just before it exits: wait for both.
for i in $(seq 200); do kill -0 "$apid" 2>/dev/null || kill -0 "$lvpid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$apid" 2>/dev/null && fail "local VM: the agent outlived the shim" ||
	pass "local VM: the agent stopped with the shim"
[ ! -e "$T/lv.d" ] && pass "local VM: state directory removed" || fail "local VM: $T/lv.d left"

# The default socket path for a non-root user.
if [ "$(id -u)" != 0 ]; then
	expect_exit "start (XDG_RUNTIME_DIR)" 0 "^unix://$T/xdg/vmshim/ns1/g2.sock\$" \
		env XDG_RUNTIME_DIR="$T/xdg" "$SHIM" -namespace ns1 -id g2 -config "$T/config.json" start
	env XDG_RUNTIME_DIR="$T/xdg" "$SHIM" -namespace ns1 -id g2 delete >/dev/null
fi
finish
