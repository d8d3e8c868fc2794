#!/bin/sh
# agent_regress.sh: regressions found in review of vmshim-agent, one scenario each:
#   slowread    a stdout reader stalled past the 5 s drain grace loses nothing, exit comes last
#   slowkill    the same with the process killed while its full pipe waits for that reader
#   dropout     the stdout socket closed inside a big spliced frame: the process is drained to
#               its end, its exit published, and the agent's descriptors are back to before
#   pidreuse    an orphan reaped by the subreaper never lends its exit to a later process
#   lifecycle   a fake runtime: calls refused while creating, one runtime delete for two
#               DeleteProcess, a runtime error taken from that command's own log
#   closingsub  an exit published while the only subscriber is closing reaches the next one
#   ptyeof      CloseStdin / stdin EOF end a terminal process's input (VEOF)
#   user        process.user.additionalGids applied even as the agent's own uid (root only);
#               an agent that is not root refuses another user (root and setpriv only)
. "$(dirname "$0")/agent_lib.sh"

# A fake OCI runtime: runc's command line, a `sleep 60` as the container, gates in $F so the
# test decides when create and delete finish, and scripted failures for pause and resume.
F="$TMP/fake"
mkdir -p "$F"
cat >"$F/runtime" <<FAKE
#!/bin/sh
log=
while [ \$# -gt 0 ]; do
	case \$1 in
	--root|--log-format) shift 2 ;;
	--log) log=\$2; shift 2 ;;
	*) break ;;
	esac
done
cmd=\$1; shift
for id; do :; done
gate() {
	touch "$F/\$id.\$1-started"
	n=0
	while [ ! -e "$F/\$id.\$1-go" ] && [ \$n -lt 200 ]; do sleep 0.05; n=\$((n + 1)); done
}
case \$cmd in
create)
	gate create
	while [ \$# -gt 1 ]; do [ "\$1" = --pid-file ] && pidfile=\$2; shift; done
	sleep 60 </dev/null >/dev/null 2>&1 &
	echo \$! >"\$pidfile"
	echo \$! >"$F/\$id.pid" ;;
start) ;;
delete)
	echo x >>"$F/\$id.delete-count"
	gate delete
	kill -9 "\$(cat "$F/\$id.pid")" 2>/dev/null ;;
pause)
	echo '{"level":"error","msg":"pause broke","time":"2026-01-01T00:00:00Z"}' >>"\$log"
	exit 1 ;;
resume)
	echo "resume broke" >&2
	exit 1 ;;
*) echo "fake runtime: \$cmd not scripted" >&2; exit 1 ;;
esac
FAKE
chmod +x "$F/runtime"

agent_start
check "$CLIENT" slowread "$SOCK" 1150000 7
check "$CLIENT" slowkill "$SOCK" 7
fds() { ls "/proc/$AGENT_PID/fd" | wc -l; }
base=$(fds)
check "$CLIENT" dropout "$SOCK"
i=0
while [ "$(fds)" != "$base" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ "$(fds)" = "$base" ] || { echo "FAIL: dropout: agent fds $(fds), before $base"; ls -l "/proc/$AGENT_PID/fd"; exit 1; }
echo "ok   dropout: agent fds back to $base"
rc=0
check "$CLIENT" pidreuse "$SOCK" "$TMP/orphan.pid" || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 77 ] || exit 1
check "$CLIENT" ptyeof "$SOCK"
if [ "$(id -u)" = 0 ]; then
	check "$CLIENT" run "$SOCK" --id groups --user 0:0:4321,4322 --stdout "$TMP/out" -- id -G
	grep -qw 4321 "$TMP/out" && grep -qw 4322 "$TMP/out" ||
		{ echo "FAIL: additionalGids not applied: id -G says $(cat "$TMP/out")"; exit 1; }
	echo "ok   user: additionalGids applied ($(cat "$TMP/out"))"
else
	echo "skip user: additionalGids need root"
fi
agent_stop

# An agent that is not root refuses a user it cannot become (the local VM maps uid 0 to itself).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	mkdir -p "$TMP/nobody"
	chmod 711 "$TMP"
	chmod 777 "$TMP/nobody"
	SOCK="$TMP/nobody/agent.sock" LOG="$TMP/nobody/agent.log"
	AGENT_WRAP="setpriv --reuid=65534 --regid=65534 --clear-groups"
	agent_start
	check "$CLIENT" usercheck "$SOCK" 1234:1234 FAILED_PRECONDITION
	check "$CLIENT" usercheck "$SOCK" 0:0:4321 FAILED_PRECONDITION
	check "$CLIENT" usercheck "$SOCK" 0:0 OK
	agent_stop
	SOCK="$TMP/agent.sock" LOG="$TMP/agent.log" AGENT_WRAP=
else
	echo "skip user: running the agent as another user needs root and setpriv"
fi

agent_start --runtime "$F/runtime" --state-dir "$TMP/state"
check "$CLIENT" lifecycle "$SOCK" "$F"
agent_stop

VMSHIM_TEST_BRINGUP_OVERLAP=1
export VMSHIM_TEST_BRINGUP_OVERLAP
agent_start
unset VMSHIM_TEST_BRINGUP_OVERLAP
check "$CLIENT" closingsub "$SOCK"
agent_stop
echo "PASS: agent_regress"
