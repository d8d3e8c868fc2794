# cri_oom.sh: a container killed by the kernel's OOM killer, through containerd's CRI plugin,
# on the runtime handler $CRI_HANDLER (sourced by cri_oom_runc.sh, the control,
# cri_oom_vmshim.sh and cri_oom_qemu.sh, where the OOM killer is the guest's). Host-network
# pods, so no CNI plugin is needed (cri_lib.sh).
#
# A container with a 32 MiB memory limit runs `dd bs=64M` (a buffer a 256 MiB guest can still
# allocate), which the OOM killer takes
# once StartContainer has answered and an exec told it to go: containerd's runc shim watches
# for OOM kills only from Start on, and an earlier one would go unseen (by the control).
#   - ContainerStatus: EXITED, exit code 137, reason OOMKilled (the plugin sets that reason
#     only when the shim sent containerd a /tasks/oom event for the container);
#   - on vmshim (both handlers), the shim's own event stream (vmshimctl events on the pod's
#     shim socket) has /tasks/oom for the container before its /tasks/exit: the agent saw the
#     cgroup's OOM kill.

H=${CRI_HANDLER:?CRI_HANDLER must be runc, vmshim or vmshim-qemu}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=cri_lib.sh
. "$(dirname "$0")/cri_lib.sh"

cri_need
case $H in runc | vmshim | vmshim-qemu) ;; *) die "unknown handler $H" ;; esac
[ -x "$CTL" ] || skip "$CTL is not built"
[ "$H" = vmshim-qemu ] && need_qemu_vsock && need_static_agent
cri_setup
[ "$H" = vmshim-qemu ] && cri_guest

S=$(run_pod p1 "$H") && [ -n "$S" ] || die "[$H] RunPodSandbox failed"
C0=$(create_ctr p1 "$S" c0 'exec sleep 1000')
cri StartContainer "{\"container_id\":\"$C0\"}" >/dev/null || die "[$H] StartContainer c0 failed"

if [ "$H" != runc ]; then
	sock=$(sed 's|^unix://||' "$(bundle_dir "$S")/address")
	"$CTL" -a "unix://$sock" events >"$T/events.txt" 2>&1 &
	PIDS="$PIDS $!"
	# The subscription is live once an event reaches it: an exec in c0 makes some.
	i=0
	while ! grep -q exec-added "$T/events.txt" 2>/dev/null; do
		[ $i -lt 100 ] || die "[$H] the shim's event stream shows nothing"
		cri ExecSync "{\"container_id\":\"$C0\",\"cmd\":[\"true\"],\"timeout\":30}" >/dev/null
		sleep 0.1
		i=$((i + 1))
	done
fi

C=$(cri CreateContainer "{\"pod_sandbox_id\":\"$S\",\"sandbox_config\":$(pod_config p1),
	\"config\":{\"metadata\":{\"name\":\"oom\"},\"image\":{\"image\":\"$BUSYBOX_IMAGE\"},
	\"command\":[\"sh\",\"-c\",\"while [ ! -e /tmp/go ]; do sleep 0.05; done; exec dd if=/dev/zero of=/dev/null bs=64M count=1\"],
	\"log_path\":\"oom.log\",\"linux\":{\"resources\":{\"memory_limit_in_bytes\":33554432}}}}" |
	jget container_id)
[ -n "$C" ] || die "[$H] CreateContainer failed"
cri StartContainer "{\"container_id\":\"$C\"}" >/dev/null || die "[$H] StartContainer failed"
cri ExecSync "{\"container_id\":\"$C\",\"cmd\":[\"sh\",\"-c\",\": > /tmp/go\"],\"timeout\":30}" >/dev/null ||
	die "[$H] the exec that starts the allocation failed"
i=0
while [ $i -lt 300 ]; do
	st=$(cri ContainerStatus "{\"container_id\":\"$C\"}")
	[ "$(echo "$st" | jget status.state)" = CONTAINER_EXITED ] && break
	sleep 0.1
	i=$((i + 1))
done
[ "$(echo "$st" | jget status.state)" = CONTAINER_EXITED ] &&
	[ "$(echo "$st" | jget status.exit_code)" = 137 ] ||
	die "[$H] the container did not die of SIGKILL: $st"

if [ "$H" != runc ]; then
	i=0
	# The init's exit (its "id" is the container's; the exec that said go exits first).
	while ! grep "/tasks/exit" "$T/events.txt" | grep -q "\"id\":\"$C\"" && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	oom=$(grep -n "/tasks/oom" "$T/events.txt" | grep "$C" | head -n 1 | cut -d: -f1)
	ex=$(grep -n "/tasks/exit" "$T/events.txt" | grep "\"id\":\"$C\"" | head -n 1 | cut -d: -f1)
	if [ -n "$oom" ] && [ -n "$ex" ] && [ "$oom" -lt "$ex" ]; then
		pass "[$H] the shim's event stream: /tasks/oom for the container, before its init's exit"
	else
		fail "[$H] the shim's events: $(grep "$C" "$T/events.txt" | cut -c1-200)"
	fi
fi

if [ "$(echo "$st" | jget status.reason)" = OOMKilled ]; then
	pass "[$H] ContainerStatus: EXITED, exit code 137, reason OOMKilled"
else
	fail "[$H] ContainerStatus after the OOM kill: $st"
fi

if [ "$FAILS" -ne 0 ]; then
	echo "FAIL: $FAILS check(s) failed (logs in $T; KEEP=1 keeps them)"
	exit 1
fi
echo PASS
exit 0
