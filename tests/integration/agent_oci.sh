#!/bin/sh
# agent_oci.sh: the oci runner with runc on a busybox bundle: create, start, exec, pids, stats,
# kill, delete; terminals (--console-socket): stty size after ResizePty, stdin, CloseStdin.
. "$(dirname "$0")/agent_lib.sh"

RUNC=$(command -v runc || true)
BUSYBOX=$(command -v busybox || true)
[ -n "$RUNC" ] || { echo "SKIP: runc is not installed (apt-get install runc)"; exit 77; }
[ -n "$BUSYBOX" ] || { echo "SKIP: busybox is not installed (apt-get install busybox-static)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: runc needs root here (uid $(id -u))"; exit 77; }
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || \
	ldd "$BUSYBOX" 2>&1 | grep -q 'not a dynamic' || \
	{ echo "SKIP: $BUSYBOX is not static (apt-get install busybox-static)"; exit 77; }

B="$TMP/bundle"
mkdir -p "$B/rootfs/bin"
cp "$BUSYBOX" "$B/rootfs/bin/busybox"
for a in sh echo cat sleep true ls stty; do ln -s busybox "$B/rootfs/bin/$a"; done
(cd "$B" && "$RUNC" spec)
# Can runc run a container in this sandbox at all? (a probe bundle sharing the rootfs)
P="$TMP/probe"
mkdir -p "$P"
sed -e 's/"terminal": true/"terminal": false/' -e 's/^\([[:space:]]*\)"sh"$/\1"true"/' \
	-e "s|\"path\": \"rootfs\"|\"path\": \"$B/rootfs\"|" "$B/config.json" > "$P/config.json"
if ! (cd "$P" && timeout 30 "$RUNC" --root "$TMP/probe-root" run "probe-$$" \
	</dev/null >"$TMP/probe.out" 2>&1); then
	echo "SKIP: runc cannot run a container here: $(tail -1 "$TMP/probe.out")"
	exit 77
fi

agent_start --runtime "$RUNC" --state-dir "$TMP/state"
check "$CLIENT" oci "$SOCK" "$B"
check "$CLIENT" ociterm "$SOCK" "$B"
# Every terminal is deleted: no pty master and no console socket is left in the agent. The
# client has just exited: the agent closes a terminal's last master once it has seen that
# client's stream connections close, so this waits (bounded, 5 s) for that rather than racing it.
i=0
while ptys=$(ls -l "/proc/$AGENT_PID/fd" | grep -c ptmx || true) && [ "$ptys" != 0 ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
[ "$ptys" = 0 ] || { echo "FAIL: the agent still holds $ptys pty master(s)"; exit 1; }
socks=$(find "$TMP/state" -name 'console-*.sock' | wc -l)
[ "$socks" = 0 ] || { echo "FAIL: $socks console socket(s) left in the state dir"; exit 1; }
echo "ok   no pty master or console socket left behind"
z=$(agent_zombies)
[ -z "$z" ] || { echo "FAIL: zombie children of the agent: $z"; exit 1; }
agent_stop
echo "PASS: agent_oci"
