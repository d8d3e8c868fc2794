#!/bin/sh
# agent_handshake.sh: the hybrid-vsock handshake of vmshim-agent --listen-uds (a client that never completes the
# handshake must not hold up others), and
# its command line, and the local VM's MountDisk with the bring-up overlap switch.
. "$(dirname "$0")/agent_lib.sh"

# Bad usage: exit 2 with one line.
for args in "" "--vsock-port 1024 --listen-uds $TMP/x" "--vsock-port abc" "--bogus" \
    "--listen-uds"; do
	rc=0
	"$AGENT" $args >"$TMP/out" 2>"$TMP/err" || rc=$?
	if [ $rc -ne 2 ] || [ "$(wc -l < "$TMP/err")" -ne 1 ]; then
		echo "FAIL: '$args' exited $rc with:"; cat "$TMP/err"; exit 1
	fi
	echo "ok   usage '$args': $(cat "$TMP/err")"
done
"$AGENT" --version | grep -q '^vmshim-agent '

agent_start
mode=$(stat -c %a "$SOCK")
[ "$mode" = 600 ] || { echo "FAIL: socket mode $mode"; exit 1; }
check "$CLIENT" handshake "$SOCK"
check "$CLIENT" ping "$SOCK"
# The agent confines itself once listening (docs/SECCOMP.md), unless built without seccomp.
if grep -q '^#define ENABLE_SECCOMP 1' "$top_builddir/config.h"; then
	grep -q 'seccomp on' "$TMP/agent.log" || { echo "FAIL: no seccomp log line"; exit 1; }
	sc=$(sed -n 's/^Seccomp:[[:space:]]*//p' "/proc/$AGENT_PID/status")
	[ "$sc" = 2 ] || { echo "FAIL: agent Seccomp: $sc, expected 2"; exit 1; }
	echo "ok   agent confined: Seccomp: $sc"
fi
check "$CLIENT" overlap "$SOCK" 0
agent_stop

# The bring-up overlap test switch drops every control connection, loudly.
VMSHIM_TEST_BRINGUP_OVERLAP=1
export VMSHIM_TEST_BRINGUP_OVERLAP
agent_start
unset VMSHIM_TEST_BRINGUP_OVERLAP
check "$CLIENT" overlap "$SOCK" 1
grep -q 'bring-up overlap detected' "$TMP/agent.log" || { echo "FAIL: no overlap log line"; exit 1; }
grep -q 'mount skipped: local VM' "$TMP/agent.log" || { echo "FAIL: no mount-skipped log line"; exit 1; }
agent_stop
echo "PASS: agent_handshake"
