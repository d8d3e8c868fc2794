# agent_lib.sh: shared setup for the agent_*.sh integration tests (sourced, not run).
# Starts the real vmshim-agent on a Unix socket in a private mkdtemp directory and stops it
# (checking it exits 0 and left no zombie) when the test ends.
set -eu
: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
AGENT="$top_builddir/contrib/agent/vmshim-agent"
CLIENT="$top_builddir/tests/integration/agent_client"
for b in "$AGENT" "$CLIENT"; do
	if [ ! -x "$b" ]; then
		echo "SKIP: $b is not built (make check builds it)"
		exit 77
	fi
done
TMP=$(mktemp -d /tmp/vmshim-agent-test.XXXXXX)
SOCK="$TMP/agent.sock"
LOG="$TMP/agent.log"
AGENT_PID=
# A command prefix for the agent (e.g. setpriv to run it as another user); empty by default.
AGENT_WRAP=

agent_start() {
	$AGENT_WRAP "$AGENT" --listen-uds "$SOCK" --log "$LOG" --debug "$@" &
	AGENT_PID=$!
	i=0
	while [ ! -S "$SOCK" ]; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$AGENT_PID" 2>/dev/null; then
			echo "FAIL: agent did not start"; cat "$LOG"; exit 1
		fi
		sleep 0.05
	done
}

# Zombie children of the agent (state Z in /proc/PID/stat, parent = agent).
agent_zombies() {
	for s in /proc/[0-9]*/stat; do
		read -r line < "$s" 2>/dev/null || continue
		rest=${line##*) }
		set -- $rest
		if [ "$2" = "$AGENT_PID" ] && [ "$1" = Z ]; then echo "${s%/stat}"; fi
	done
}

agent_stop() {
	[ -n "$AGENT_PID" ] || return 0
	kill -TERM "$AGENT_PID"
	rc=0
	wait "$AGENT_PID" || rc=$?
	AGENT_PID=
	if [ $rc -ne 0 ]; then
		echo "FAIL: agent exited $rc on SIGTERM"; tail -20 "$LOG"; exit 1
	fi
	if [ -S "$SOCK" ]; then echo "FAIL: agent left its socket behind"; exit 1; fi
}

agent_cleanup() {
	rc=$?
	if [ -n "$AGENT_PID" ]; then kill -KILL "$AGENT_PID" 2>/dev/null || true; fi
	if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -f "$LOG" ]; then
		echo "--- agent log (last 30 lines)"; tail -30 "$LOG"
	fi
	rm -rf "$TMP"
	exit $rc
}
trap agent_cleanup EXIT

check() {
	echo "== $*"
	"$@"
}
