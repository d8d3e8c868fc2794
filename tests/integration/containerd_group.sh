#!/bin/sh
# containerd_group.sh: grouping and the annotations a bundle may set, through a private, real
# containerd.
# - Two containers with the same group annotation share one shim (and, for vmshim, one local
#   VM agent); after the first is removed (containerd asks Shutdown) the second still execs;
#   once both are removed the shim exits. The control is containerd's runc shim with its own
#   group annotation (io.containerd.runc.v2.group), vmshim uses io.vmshim.group.
# - A bundle annotation io.vmshim.seccomp=false fails the run with a message naming the key
#   (runc, which does not know it, runs the container); with `ctr run --runtime-config-path`
#   naming a configuration whose allowed_annotations lists seccomp, it runs (the path reaches
#   `start` on stdin as a runtimeoptions.v1.Options), and a path that does not exist fails.
. "$(dirname "$0")/containerd_lib.sh"

ctd_setup
for rt in $RUNTIMES; do
	n=$(rt_name "$rt")
	case $n in
	runc) key=io.containerd.runc.v2.group ;;
	*) key=io.vmshim.group ;;
	esac
	g=grp-$n-$$
	for c in a b; do
		ctr_ run -d --env PATH=/bin --runtime "$rt" --annotation "$key=$g" \
			--rootfs "$T/rootfs" "$c-$n" sleep 1000 >/dev/null 2>"$T/err" ||
			fail "$n: run -d $c: $(cat "$T/err")"
		wait_status "$c-$n" RUNNING || fail "$n: $c-$n is not RUNNING"
	done
	shims=$(shim_pids "$n" "" | wc -l)
	[ "$shims" = 1 ] && pass "$n: two containers of group $g share one shim" ||
		fail "$n: $shims shims for group $g"
	if [ "$n" = vmshim ]; then
		agents=$(pgrep -f "vmshim-agent --listen-uds /run/vmshim/$NS/" | wc -l)
		[ "$agents" = 1 ] && pass "$n: ... and one local VM agent" ||
			fail "$n: $agents agents for group $g"
	fi
	ctr_ task kill -s SIGKILL "a-$n" 2>/dev/null
	wait_status "a-$n" STOPPED || fail "$n: a-$n not STOPPED"
	ctr_ task rm "a-$n" >/dev/null 2>&1 || fail "$n: task rm a-$n"
	ctr_ container rm "a-$n" 2>/dev/null
	out=$(ctr_ task exec --exec-id e1 "b-$n" echo b lives </dev/null 2>"$T/err")
	[ "$out" = "b lives" ] && pass "$n: after a's removal, exec in b works" ||
		fail "$n: exec in b after a's removal: \"$out\": $(cat "$T/err")"
	ctr_ task kill -s SIGKILL "b-$n" 2>/dev/null
	wait_status "b-$n" STOPPED || fail "$n: b-$n not STOPPED"
	ctr_ task rm "b-$n" >/dev/null 2>&1 || fail "$n: task rm b-$n"
	ctr_ container rm "b-$n" 2>/dev/null
	i=0
	while [ -n "$(shim_pids "$n" "")" ] && [ $i -lt 200 ]; do
		i=$((i + 1))
		sleep 0.05
	done
	[ -z "$(shim_pids "$n" "")" ] && pass "$n: the group's shim exited after its last task" ||
		fail "$n: the group's shim still runs: $(shim_pids "$n" "" | tr '\n' ' ')"
	[ "$n" = vmshim ] && [ -n "$(pgrep -f "vmshim-agent --listen-uds /run/vmshim/$NS/")" ] &&
		fail "$n: the group's agent still runs"

	out=$(ctr_ run --rm --env PATH=/bin --runtime "$rt" --annotation io.vmshim.seccomp=false \
		--rootfs "$T/rootfs" "sec-$n" echo ran </dev/null 2>&1)
	rc=$?
	case $n in
	runc)
		[ $rc = 0 ] && [ "$out" = ran ] && pass "$n: io.vmshim.seccomp means nothing to runc" ||
			fail "$n: annotation control: exit $rc: $out"
		;;
	*)
		[ $rc != 0 ] && echo "$out" | grep -q 'io.vmshim.seccomp' &&
			pass "$n: io.vmshim.seccomp=false refused: $out" ||
			fail "$n: io.vmshim.seccomp=false: exit $rc: $out"
		;;
	esac
	ctr_ container rm "sec-$n" 2>/dev/null

	echo '{"allowed_annotations": ["seccomp"]}' >"$T/allow.json"
	out=$(ctr_ run --rm --env PATH=/bin --runtime "$rt" --runtime-config-path "$T/allow.json" \
		--annotation io.vmshim.seccomp=false --rootfs "$T/rootfs" "allow-$n" echo ran </dev/null 2>&1)
	rc=$?
	[ $rc = 0 ] && [ "$out" = ran ] &&
		pass "$n: runtime option config_path with allowed_annotations: the run goes" ||
		fail "$n: runtime option config_path: exit $rc: $out"
	ctr_ container rm "allow-$n" 2>/dev/null
	if [ "$n" = vmshim ]; then
		out=$(ctr_ run --rm --env PATH=/bin --runtime "$rt" --runtime-config-path /nonexistent/vmshim.json \
			--rootfs "$T/rootfs" "noconf-$n" echo ran </dev/null 2>&1)
		rc=$?
		[ $rc != 0 ] && echo "$out" | grep -q 'config /nonexistent/vmshim.json' &&
			pass "$n: a config_path that does not exist fails: $out" ||
			fail "$n: missing config_path: exit $rc: $out"
		ctr_ container rm "noconf-$n" 2>/dev/null
	fi
done
ctd_finish
