#!/bin/sh
# containerd_lifecycle.sh: a detached container's life through a private, real containerd, for
# vmshim and for containerd's runc shim as the control: `run -d`, `task exec` (its output and
# exit code), `task kill -s SIGKILL`, `task ls` showing STOPPED, `task rm`; `ctr events` shows
# /tasks/create, /tasks/start, /tasks/exec-added, /tasks/exec-started, /tasks/exit and
# /tasks/delete for the container, in that order. The shim's log lines reach containerd's log
# through the bundle's `log` FIFO (vmshim: its "serving on" line; runc: "starting signal
# loop").
. "$(dirname "$0")/containerd_lib.sh"

ctd_setup
ctr --address "$T/c.sock" events >"$T/events" 2>&1 &
EV_PID=$!

for rt in $RUNTIMES; do
	n=$(rt_name "$rt")
	c=$(cname life "$rt")
	if ! ctr_ run -d --env PATH=/bin --runtime "$rt" --rootfs "$T/rootfs" "$c" \
		sleep 1000 >/dev/null 2>"$T/err"; then
		fail "$n: run -d: $(cat "$T/err")"
		continue
	fi
	wait_status "$c" RUNNING && pass "$n: run -d: task RUNNING" ||
		fail "$n: run -d: task is $(task_status "$c"), not RUNNING"

	out=$(ctr_ task exec --exec-id e1 "$c" sh -c 'echo exec says hi; exit 5' </dev/null 2>"$T/err")
	rc=$?
	[ $rc = 5 ] && [ "$out" = "exec says hi" ] && pass "$n: exec output and exit code 5" ||
		fail "$n: exec: exit $rc, output \"$out\": $(cat "$T/err")"

	ctr_ task kill -s SIGKILL "$c" 2>"$T/err" || fail "$n: kill: $(cat "$T/err")"
	wait_status "$c" STOPPED && pass "$n: after SIGKILL task ls says STOPPED" ||
		fail "$n: after SIGKILL the task is $(task_status "$c")"
	ctr_ task rm "$c" >/dev/null 2>"$T/err" || fail "$n: task rm: $(cat "$T/err")"
	[ -z "$(task_status "$c")" ] && pass "$n: task rm: the task is gone" ||
		fail "$n: task rm: the task is still listed ($(task_status "$c"))"
	ctr_ container rm "$c" 2>"$T/err" || fail "$n: container rm: $(cat "$T/err")"
	case $n in
	runc) line="starting signal loop.*$c" ;;
	*) line="serving on /run/vmshim/$NS/$c.sock" ;;
	esac
	grep -q "$line" "$T/containerd.log" && pass "$n: the shim's log reached containerd's" ||
		fail "$n: no \"$line\" in containerd's log"
done

# Events: each container's topics must contain the lifecycle in order.
i=0
for rt in $RUNTIMES; do
	c=$(cname life "$rt")
	while ! grep "\"container_id\":\"$c\"" "$T/events" | grep -q /tasks/delete; do
		i=$((i + 1))
		[ $i -lt 200 ] || break
		sleep 0.05
	done
done
kill "$EV_PID" 2>/dev/null
wait "$EV_PID" 2>/dev/null
for rt in $RUNTIMES; do
	n=$(rt_name "$rt")
	c=$(cname life "$rt")
	# DATE TIME +0000 UTC NAMESPACE TOPIC EVENT
	topics=$(grep "\"container_id\":\"$c\"" "$T/events" | awk '{ print $6 }' | tr '\n' ' ')
	if echo "$topics" | grep -q \
		'/tasks/create .*/tasks/start .*/tasks/exec-added .*/tasks/exec-started .*/tasks/exit .*/tasks/delete'; then
		pass "$n: events in order: $topics"
	else
		fail "$n: events: \"$topics\""
	fi
done
ctd_finish
