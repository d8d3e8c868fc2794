#!/bin/bash
# shim_ctl.sh: the Task methods end to end through vmshimctl, the way people and scripts drive
# the shim: create/start/state/ps/stats/pause/resume/exec/wait/close-stdin/kill/delete/connect/
# shutdown, with real FIFOs, checking what reaches stdout.
. "$(dirname "$0")/lib.sh"
need_bins "$CTL"
setup
SECCOMP=${SECCOMP:-true} # this test also runs the shim confined (docs/CONTRACT.md 6)
start_agent
start_shim
export VMSHIM_ADDRESS="unix://$T/shim.sock"
# Confined once it answers (start-up loads the filter before serving), unless built without it.
if grep -q '^#define ENABLE_SECCOMP 1' "$top_builddir/config.h"; then
	sc=$(sed -n 's/^Seccomp:[[:space:]]*//p' "/proc/$SHIM_PID/status")
	[ "$sc" = 2 ] && pass "the shim is confined: Seccomp: $sc" || fail "shim Seccomp: $sc, want 2"
	grep -q 'seccomp on (allow-list' "$T/shim.log" && pass "the log says the filter is on" ||
		fail "no 'seccomp on' log line"
fi

# expect_ctl WHAT STATUS PATTERN ARGS...: vmshimctl's exit status and output must match.
expect_ctl() {
	what=$1 want=$2 pat=$3
	shift 3
	out=$("$CTL" "$@" 2>&1)
	st=$?
	if [ "$st" = "$want" ] && printf '%s\n' "$out" | grep -Eq -- "$pat"; then
		pass "$what: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-150)"
	else
		fail "$what: exit $st (want $want): '$out' (want /$pat/)"
	fi
}

make_bundle b1 'cat; echo done'
make_bundle b2 'echo hello from c2; sleep 1000'
mkfifo "$T/c1.in" "$T/c1.out" "$T/c2.out"
cat "$T/c1.out" >"$T/c1.cap" &
PIDS="$PIDS $!"
cat "$T/c2.out" >"$T/c2.cap" &
PIDS="$PIDS $!"

expect_ctl "create c1" 0 '^c1 +pid [1-9]' create c1 --bundle "$T/b1" --stdin "$T/c1.in" --stdout "$T/c1.out"
expect_ctl "create c2" 0 '^c2 +pid [1-9]' create c2 --bundle "$T/b2" --stdout "$T/c2.out"
expect_ctl "state c1" 0 'CREATED' state c1
exec 3>"$T/c1.in"
expect_ctl "start c1" 0 '^c1 +pid [1-9]' start c1
expect_ctl "start c2" 0 '^c2 +pid [1-9]' start c2
echo "through the fifo" >&3
expect_ctl "state c1" 0 'RUNNING' state c1
expect_ctl "ps c2" 0 '^[1-9][0-9]*$' ps c2
expect_ctl "stats c2" 0 '"pids"' stats c2
expect_ctl "pause c2" 0 '' pause c2
expect_ctl "state c2 (paused)" 0 'PAUSED' state c2
expect_ctl "resume c2" 0 '' resume c2
expect_ctl "state c2 (resumed)" 0 'RUNNING' state c2
expect_ctl "exec c2 e1" 0 '' exec c2 e1 --stdout "$T/e1.out" -- sh -c 'echo exec output; exit 4'
expect_ctl "start e1" 0 'c2/e1 +pid [1-9]' start c2 --exec-id e1
expect_ctl "wait e1" 0 'exited 4' wait c2 --exec-id e1
grep -qx "exec output" "$T/e1.out" && pass "exec stdout: $(cat "$T/e1.out")" || fail "exec stdout: '$(cat "$T/e1.out")'"
expect_ctl "delete e1" 0 'exit 4' delete c2 --exec-id e1
expect_ctl "delete running c2" 1 'FAILED_PRECONDITION' delete c2
expect_ctl "close-stdin c1" 0 '' close-stdin c1
expect_ctl "wait c1" 0 'exited 0' wait c1
exec 3>&-
expect_ctl "kill c2" 0 '' kill c2 --signal KILL
expect_ctl "wait c2" 0 'exited 137' wait c2
for i in $(seq 100); do grep -q done "$T/c1.cap" && break; sleep 0.05; done
[ "$(cat "$T/c1.cap")" = "$(printf 'through the fifo\ndone')" ] && pass "c1 stdout: $(tr '\n' '|' <"$T/c1.cap")" || fail "c1 stdout: '$(cat "$T/c1.cap")'"
grep -qx "hello from c2" "$T/c2.cap" && pass "c2 stdout: $(cat "$T/c2.cap")" || fail "c2 stdout: '$(cat "$T/c2.cap")'"
expect_ctl "kill a finished process" 1 'NOT_FOUND' kill c1
expect_ctl "delete c1" 0 'exit 0' delete c1
expect_ctl "delete c2" 0 'exit 137' delete c2
expect_ctl "state of a deleted task" 1 'NOT_FOUND' state c1
expect_ctl "connect" 0 "shim pid $SHIM_PID" connect c1
expect_ctl "call (unknown method)" 1 'UNIMPLEMENTED' call containerd.task.v2.Task Frobnicate '{}'
expect_ctl "shutdown" 0 '' shutdown c1
for i in $(seq 100); do kill -0 "$SHIM_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$SHIM_PID" 2>/dev/null && fail "the shim is still running after shutdown" || pass "the shim exited after shutdown"
finish
