#!/bin/sh
# containerd_restart.sh: containerd stopped and started again while a task runs (vmshim, and
# containerd's runc shim as the control): the restarted containerd finds the shim through the
# bundle's `address` file, the task is still RUNNING and exec works in it.
. "$(dirname "$0")/containerd_lib.sh"

ctd_setup
for rt in $RUNTIMES; do
	c=$(cname restart "$rt")
	ctr_ run -d --env PATH=/bin --runtime "$rt" --rootfs "$T/rootfs" "$c" sleep 1000 \
		>/dev/null 2>"$T/err-$c" || fail "$(rt_name "$rt"): run -d: $(cat "$T/err-$c")"
	wait_status "$c" RUNNING || fail "$(rt_name "$rt"): not RUNNING before the restart"
	pid=$(task_pid "$c")
	eval "pid_$(rt_name "$rt")=$pid"
done
ctd_stop
ctd_start
for rt in $RUNTIMES; do
	n=$(rt_name "$rt")
	c=$(cname restart "$rt")
	eval "pid=\$pid_$n"
	st=$(task_status "$c")
	[ "$st" = RUNNING ] && [ "$(task_pid "$c")" = "$pid" ] &&
		pass "$n: after the restart the task is RUNNING (pid $pid)" ||
		fail "$n: after the restart the task is \"$st\" pid $(task_pid "$c"), was RUNNING pid $pid"
	out=$(ctr_ task exec --exec-id e1 "$c" echo still here </dev/null 2>"$T/err")
	rc=$?
	[ $rc = 0 ] && [ "$out" = "still here" ] && pass "$n: exec after the restart" ||
		fail "$n: exec after the restart: exit $rc, output \"$out\": $(cat "$T/err")"
	ctr_ task kill -s SIGKILL "$c" 2>/dev/null
	wait_status "$c" STOPPED || fail "$n: not STOPPED after SIGKILL"
	ctr_ task rm "$c" >/dev/null 2>&1
	ctr_ container rm "$c" 2>/dev/null
done
ctd_finish
