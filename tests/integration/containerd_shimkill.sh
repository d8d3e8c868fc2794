#!/bin/sh
# containerd_shimkill.sh: the shim SIGKILLed under a running container (vmshim, and
# containerd's runc shim as the control): containerd notices, runs `shim delete`, the task is
# reported STOPPED or is gone, and nothing of the container keeps running (for vmshim: neither
# the container's processes nor the local VM's agent).
. "$(dirname "$0")/containerd_lib.sh"

# Is pid gone (or a zombie)?
gone() {
	! kill -0 "$1" 2>/dev/null && return 0
	[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

wait_gone() {
	i=0
	while ! gone "$1"; do
		i=$((i + 1))
		[ $i -lt 400 ] || return 1
		sleep 0.05
	done
}

ctd_setup
for rt in $RUNTIMES; do
	n=$(rt_name "$rt")
	c=$(cname kill "$rt")
	ctr_ run -d --env PATH=/bin --runtime "$rt" --rootfs "$T/rootfs" "$c" \
		sh -c 'sleep 1000 & sleep 1000' >/dev/null 2>"$T/err" || fail "$n: run -d: $(cat "$T/err")"
	wait_status "$c" RUNNING || fail "$n: not RUNNING"
	pid=$(task_pid "$c")
	child=$(pgrep -P "$pid" | head -n 1)
	spid=$(shim_pids "$n" "$c")
	[ -n "$spid" ] && [ -n "$pid" ] && [ -n "$child" ] || {
		fail "$n: shim pid \"$spid\", task pid \"$pid\", child \"$child\""
		continue
	}
	agents=$(pgrep -f "vmshim-agent --listen-uds /run/vmshim/$NS/$c.d/" | tr '\n' ' ')
	kill -9 "$spid"
	i=0
	while st=$(task_status "$c") && [ -n "$st" ] && [ "$st" != STOPPED ]; do
		i=$((i + 1))
		[ $i -lt 400 ] || break
		sleep 0.05
	done
	[ -z "$st" ] || [ "$st" = STOPPED ] &&
		pass "$n: shim SIGKILLed: the task is ${st:-gone}" ||
		fail "$n: shim SIGKILLed: the task is still $st"
	wait_gone "$pid" && wait_gone "$child" &&
		pass "$n: the container's processes ($pid, $child) are gone" ||
		fail "$n: the container's processes still run: $(ps -o pid=,args= -p "$pid,$child")"
	for a in $agents; do
		wait_gone "$a" && pass "$n: the local VM's agent $a is gone" ||
			fail "$n: the agent $a still runs"
	done
	[ "$n" = vmshim ] && [ -z "$agents" ] && fail "$n: no agent was found for $c"
	# containerd runs `delete` once it notices; its end is not visible in `ctr`: wait for it.
	i=0
	while [ "$n" = vmshim ] && [ -e "/run/vmshim/$NS/$c.d" ] && [ $i -lt 400 ]; do
		i=$((i + 1))
		sleep 0.05
	done
	if [ "$n" = vmshim ]; then
		[ -e "/run/vmshim/$NS/$c.d" ] || [ -e "/run/vmshim/$NS/$c.sock" ] &&
			fail "$n: /run/vmshim/$NS/$c.{d,sock} left after delete" ||
			pass "$n: delete removed the socket and the state directory"
	fi
	ctr_ task rm -f "$c" >/dev/null 2>&1
	ctr_ container rm "$c" 2>/dev/null
done
ctd_finish
