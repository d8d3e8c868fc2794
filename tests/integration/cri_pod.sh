# cri_pod.sh: one Kubernetes pod through containerd's CRI plugin, on the runtime handler
# $CRI_HANDLER (sourced by cri_pod_runc.sh, the control, cri_pod_vmshim.sh, the local VM, and
# cri_pod_qemu.sh, a TCG microVM per pod).
#
# A private containerd with the CRI plugin on (cri_lib.sh); the pod uses the node's network
# namespace, so no CNI plugin is needed. The rows:
#   - RunPodSandbox + 2 containers: the three tasks share one shim (the bundles' address files
#     name one socket, served by one shim process, and every container process descends from
#     it); on vmshim, one VM (one vmshim-agent, the shim's child) runs all three; on
#     vmshim-qemu, one QEMU (the shim's child) and every container sees the guest's kernel;
#   - ExecSync in each container: its stdout, stderr and exit code;
#   - a container's stdout and stderr in its CRI log file, in CRI log format;
#   - ContainerStatus of a container that exits 3: EXITED, exit code 3;
#   - ListContainerStats and ListPodSandboxStats: non-zero memory and cpu;
#   - Pids (ctr task ps): the container's process is listed;
#   - UpdateContainerResources: the new memory limit is what the container sees;
#   - on vmshim, pod annotations: an allow-listed io.vmshim.* key is taken, another fails
#     RunPodSandbox naming the key; the handler's ConfigPath picks the configuration file
#     (vmshim-alt's file allows io.vmshim.workers, vmshim's does not);
#   - StopPodSandbox + RemovePodSandbox: no shim, agent or container process, socket, state
#     directory, mount or container cgroup is left.

H=${CRI_HANDLER:?CRI_HANDLER must be runc, vmshim or vmshim-qemu}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=cri_lib.sh
. "$(dirname "$0")/cri_lib.sh"

cri_need
case $H in
runc) SHIM_EXE=$(readlink -f "$(command -v containerd-shim-runc-v2)") ||
	skip "containerd-shim-runc-v2 is not installed" ;;
vmshim | vmshim-qemu) SHIM_EXE=$(readlink -f "$SHIM") ;;
*) die "unknown handler $H" ;;
esac
AGENT_EXE=$(readlink -f "$AGENT")
[ "$H" = vmshim-qemu ] && need_qemu_vsock && need_static_agent
cri_setup
[ "$H" = vmshim-qemu ] && cri_guest

exe_of() {
	readlink -f "/proc/$1/exe" 2>/dev/null
}

# Processes of this containerd running the binary $1.
procs_of() {
	for p in $(cri_procs); do
		[ "$(exe_of "$p")" = "$1" ] && echo "$p"
	done
}

# --- RunPodSandbox + 2 containers: one shim, one VM ---
S=$(run_pod p1 "$H") && [ -n "$S" ] || die "[$H] RunPodSandbox failed: $(tail -3 "$T/containerd.log")"
st=$(cri PodSandboxStatus "{\"pod_sandbox_id\":\"$S\"}")
if [ "$(echo "$st" | jget status.state)" = SANDBOX_READY ] &&
	[ "$(echo "$st" | jget status.runtime_handler)" = "$H" ]; then
	pass "[$H] RunPodSandbox: the sandbox is READY on handler $H"
else
	fail "[$H] PodSandboxStatus: $st"
fi
C1=$(create_ctr p1 "$S" c1 'echo out-line-1; echo err-line-1 >&2; i=0; while [ $i -lt 20000 ]; do i=$((i + 1)); done; exec sleep 1000')
C2=$(create_ctr p1 "$S" c2 'exec sleep 1000')
[ -n "$C1" ] && [ -n "$C2" ] || die "[$H] CreateContainer failed"
cri StartContainer "{\"container_id\":\"$C1\"}" >/dev/null || die "[$H] StartContainer c1 failed"
cri StartContainer "{\"container_id\":\"$C2\"}" >/dev/null || die "[$H] StartContainer c2 failed"

addr_s=$(cat "$(bundle_dir "$S")/address" 2>/dev/null)
addr_1=$(cat "$(bundle_dir "$C1")/address" 2>/dev/null)
addr_2=$(cat "$(bundle_dir "$C2")/address" 2>/dev/null)
sock=${addr_s#unix://}
if [ -n "$addr_s" ] && [ "$addr_s" = "$addr_1" ] && [ "$addr_s" = "$addr_2" ]; then
	pass "[$H] the three bundles' address files name one shim: $addr_s"
else
	fail "[$H] address files differ: '$addr_s' '$addr_1' '$addr_2'"
fi
SHIM_PID=$(socket_pid "$sock")
# The microVM's mounter is a fork of the shim (same binary), named vmshim-mounter.
shims=$(for p in $(procs_of "$SHIM_EXE"); do
	[ "$(cat "/proc/$p/comm" 2>/dev/null)" = vmshim-mounter ] || echo "$p"
done | tr '\n' ' ')
if [ -n "$SHIM_PID" ] && [ "$(exe_of "$SHIM_PID")" = "$SHIM_EXE" ] && [ "$shims" = "$SHIM_PID " ]; then
	pass "[$H] one shim process ($SHIM_PID) serves $sock"
else
	fail "[$H] shim processes: '$shims', socket served by '$SHIM_PID'"
	cri_ps
fi
P0=$(sandbox_pid "$S")
P1=$(ctr_pid "$C1")
P2=$(ctr_pid "$C2")
TOP=$SHIM_PID
# one_vm EXE WHAT: exactly one process of EXE serves the pod, the shim's child; TOP is it.
one_vm() {
	what=$2
	vms=$(procs_of "$1" | tr '\n' ' ')
	set -- $vms
	if [ $# -eq 1 ] && [ "$(awk '/^PPid:/ {print $2}' "/proc/$1/status")" = "$SHIM_PID" ]; then
		pass "[$H] one VM: one $what ($1), the shim's child"
		TOP=$1
	else
		fail "[$H] $what processes: '$vms' (want one, child of the shim $SHIM_PID)"
		cri_ps
	fi
}
[ "$H" = vmshim ] && one_vm "$AGENT_EXE" vmshim-agent
if [ "$H" = vmshim-qemu ]; then
	one_vm "$(readlink -f "$(command -v "$QEMU_BIN")")" QEMU
	# The pids are the guest's; what shows they run there is the kernel they see.
	kver=$(cat "$T/guest/kernel-version")
	for nc in "sandbox $S" "c1 $C1" "c2 $C2"; do
		set -- $nc
		[ "$1" = sandbox ] && continue # the pause image has no shell
		out=$(cri ExecSync "{\"container_id\":\"$2\",\"cmd\":[\"uname\",\"-r\"],\"timeout\":60}")
		[ "$(echo "$out" | jget stdout)" = "$kver" ] && [ "$kver" != "$(uname -r)" ] &&
			pass "[$H] $1 runs in the guest: uname -r says $kver (the host runs $(uname -r))" ||
			fail "[$H] uname -r in $1: $out (guest $kver, host $(uname -r))"
	done
	[ -n "$P0" ] && [ "$P0" != 0 ] && [ -n "$P1" ] && [ "$P1" != 0 ] && [ -n "$P2" ] && [ "$P2" != 0 ] &&
		pass "[$H] the sandbox and both containers have pids in the guest: $P0 $P1 $P2" ||
		fail "[$H] container pids '$P0' '$P1' '$P2'"
else
	ok=1
	for p in "$P0" "$P1" "$P2"; do
		[ -n "$p" ] && [ "$p" != 0 ] && is_descendant "$p" "$TOP" || ok=0
	done
	if [ $ok = 1 ]; then
		pass "[$H] the sandbox and both containers ($P0 $P1 $P2) run under $TOP"
	else
		fail "[$H] container pids '$P0' '$P1' '$P2' do not all descend from $TOP"
		cri_ps
	fi
fi

# --- ExecSync in each container ---
for nc in "c1 $C1" "c2 $C2"; do
	set -- $nc
	out=$(cri ExecSync "{\"container_id\":\"$2\",\"cmd\":[\"sh\",\"-c\",\"echo exec-out-$1; echo exec-err >&2; exit 7\"],\"timeout\":30}")
	if [ "$(echo "$out" | jget stdout)" = "exec-out-$1" ] &&
		[ "$(echo "$out" | jget stderr)" = exec-err ] && [ "$(echo "$out" | jget exit_code)" = 7 ]; then
		pass "[$H] ExecSync in $1: stdout, stderr and exit code 7"
	else
		fail "[$H] ExecSync in $1: $out"
	fi
done
out=$(cri ExecSync "{\"container_id\":\"$C2\",\"cmd\":[\"true\"],\"timeout\":30}")
[ "$(echo "$out" | jget exit_code)" = 0 ] && pass "[$H] ExecSync true: exit code 0" ||
	fail "[$H] ExecSync true: $out"

# --- the CRI log file ---
log=$T/logs/p1/c1.log
i=0
while [ $i -lt 100 ] && ! { grep -q 'stdout F out-line-1$' "$log" && grep -q 'stderr F err-line-1$' "$log"; } 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
crifmt='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9:]+) (stdout|stderr) [FP] '
if grep -Eq "${crifmt}out-line-1\$" "$log" 2>/dev/null && grep -Eq "${crifmt}err-line-1\$" "$log" &&
	! grep -Evq "$crifmt" "$log"; then
	pass "[$H] stdout and stderr in the CRI log file, in CRI log format"
else
	fail "[$H] CRI log $log: $(head -c 400 "$log" 2>&1)"
fi

# --- ContainerStatus of an exited container ---
C3=$(create_ctr p1 "$S" c3 'echo bye; exit 3')
cri StartContainer "{\"container_id\":\"$C3\"}" >/dev/null || fail "[$H] StartContainer c3"
i=0
while [ $i -lt 300 ]; do
	st=$(cri ContainerStatus "{\"container_id\":\"$C3\"}")
	[ "$(echo "$st" | jget status.state)" = CONTAINER_EXITED ] && break
	sleep 0.1
	i=$((i + 1))
done
if [ "$(echo "$st" | jget status.state)" = CONTAINER_EXITED ] &&
	[ "$(echo "$st" | jget status.exit_code)" = 3 ] &&
	[ "$(echo "$st" | jget status.finished_at)" -gt 0 ]; then
	pass "[$H] ContainerStatus: EXITED with exit code 3"
else
	fail "[$H] ContainerStatus of c3: $st"
fi

# --- stats ---
st=$(cri ListContainerStats "{\"filter\":{\"id\":\"$C1\"}}")
mem=$(echo "$st" | jget stats.0.memory.working_set_bytes.value)
cpu=$(echo "$st" | jget stats.0.cpu.usage_core_nano_seconds.value)
if [ "${mem:-0}" -gt 0 ] && [ "${cpu:-0}" -gt 0 ]; then
	pass "[$H] ListContainerStats: working set $mem bytes, cpu $cpu ns"
else
	fail "[$H] ListContainerStats: $st"
fi
st=$(cri ListPodSandboxStats "{\"filter\":{\"id\":\"$S\"}}" 2>&1)
mem=$(echo "$st" | jget stats.0.linux.memory.working_set_bytes.value 2>/dev/null)
cpu=$(echo "$st" | jget stats.0.linux.cpu.usage_core_nano_seconds.value 2>/dev/null)
if [ "${mem:-0}" -gt 0 ] && [ "${cpu:-0}" -gt 0 ]; then
	pass "[$H] ListPodSandboxStats: working set $mem bytes, cpu $cpu ns"
else
	fail "[$H] ListPodSandboxStats: $st"
fi

# --- Pids (containerd's task API, as `ctr task ps` asks it) ---
ps_out=$(ctr -a "$T/containerd.sock" -n "$CRI_NS" task ps "$C2" 2>&1)
if printf '%s\n' "$ps_out" | awk 'NR > 1 {print $1}' | grep -qx "$P2"; then
	pass "[$H] Pids: the container's process $P2 is listed"
else
	fail "[$H] Pids of c2 (pid $P2): $ps_out"
fi

# --- UpdateContainerResources ---
lim=67108864
if cri UpdateContainerResources "{\"container_id\":\"$C2\",\"linux\":{\"memory_limit_in_bytes\":$lim}}" >/dev/null; then
	# cgroup v1 (a memory hierarchy) or v2 (memory.max in the container's own cgroup).
	out=$(cri ExecSync "{\"container_id\":\"$C2\",\"cmd\":[\"sh\",\"-c\",\"cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max\"],\"timeout\":30}")
	[ "$(echo "$out" | jget stdout)" = $lim ] &&
		pass "[$H] UpdateContainerResources: the container's memory limit is now $lim" ||
		fail "[$H] after UpdateContainerResources the container sees: $out"
else
	fail "[$H] UpdateContainerResources failed"
fi

# --- pod annotations (vmshim only: runc ignores them) ---
if [ "$H" = vmshim ]; then
	A='{"io.vmshim.vm.memory_mib":"320"}'
	S2=$(run_pod p2 "$H" "$A")
	if [ -n "$S2" ]; then
		pass "[$H] an allow-listed pod annotation (io.vmshim.vm.memory_mib) is taken"
		cri StopPodSandbox "{\"pod_sandbox_id\":\"$S2\"}" >/dev/null
		cri RemovePodSandbox "{\"pod_sandbox_id\":\"$S2\"}" >/dev/null
	else
		fail "[$H] RunPodSandbox with io.vmshim.vm.memory_mib failed"
	fi
	mkdir -p "$T/logs/p3"
	err=$(cri RunPodSandbox "{\"config\":$(pod_config p3 '{"io.vmshim.seccomp":"false"}'),\"runtime_handler\":\"$H\"}" 2>&1)
	if [ $? -ne 0 ] && printf '%s' "$err" | grep -q 'io.vmshim.seccomp'; then
		pass "[$H] a pod annotation off the allow-list fails RunPodSandbox naming the key"
	else
		fail "[$H] RunPodSandbox with io.vmshim.seccomp=false: $err"
	fi
	A='{"io.vmshim.workers":"2"}'
	mkdir -p "$T/logs/p4"
	err=$(cri RunPodSandbox "{\"config\":$(pod_config p4 "$A"),\"runtime_handler\":\"vmshim\"}" 2>&1)
	rc=$?
	S4=$(run_pod p5 vmshim-alt "$A")
	if [ $rc -ne 0 ] && printf '%s' "$err" | grep -q 'io.vmshim.workers' && [ -n "$S4" ]; then
		pass "[$H] ConfigPath per handler: io.vmshim.workers refused on vmshim, taken on vmshim-alt"
	else
		fail "[$H] ConfigPath per handler: vmshim said '$err', vmshim-alt gave '$S4'"
	fi
	if [ -n "$S4" ]; then
		cri StopPodSandbox "{\"pod_sandbox_id\":\"$S4\"}" >/dev/null
		cri RemovePodSandbox "{\"pod_sandbox_id\":\"$S4\"}" >/dev/null
	fi
fi

# --- StopPodSandbox + RemovePodSandbox leave nothing ---
if [ "$H" = vmshim-qemu ]; then
	pids="$SHIM_PID $TOP $(pgrep -P "$SHIM_PID" | tr '\n' ' ')" # QEMU, vmshim-vsock, the mounter
else
	pids="$SHIM_PID $P0 $P1 $P2 ${TOP#"$SHIM_PID"}"
fi
dirs="$(bundle_dir "$S") $(bundle_dir "$C1") $(bundle_dir "$C2") $(bundle_dir "$C3")"
for id in "$S" "$C1" "$C2" "$C3"; do
	dirs="$dirs /run/containerd/runc/$CRI_NS/$id /run/vmshim/$CRI_NS/$id"
done
cri StopPodSandbox "{\"pod_sandbox_id\":\"$S\"}" >/dev/null || fail "[$H] StopPodSandbox"
cri RemovePodSandbox "{\"pod_sandbox_id\":\"$S\"}" >/dev/null || fail "[$H] RemovePodSandbox"
# The shim exits once containerd's Shutdown is answered, a moment after RemovePodSandbox.
i=0
while [ $i -lt 100 ]; do
	alive=
	for p in $pids; do
		kill -0 "$p" 2>/dev/null && alive="$alive $p"
	done
	[ -z "$alive" ] && [ -z "$(cri_procs)" ] && break
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$alive" ] && [ -z "$(cri_procs)" ]; then
	pass "[$H] after RemovePodSandbox no shim, agent or container process is left"
else
	fail "[$H] processes left:$alive"
	cri_ps
fi
left=
[ -e "$sock" ] && left="$left $sock"
for d in $dirs; do
	ls -d "$d"* >/dev/null 2>&1 && left="$left $(ls -d "$d"* | tr '\n' ' ')"
done
[ -z "$left" ] && pass "[$H] no socket or state directory is left" || fail "[$H] left:$left"
m=$(cri_mounts)
[ -z "$m" ] && pass "[$H] no mount is left" || fail "[$H] mounts left: $m"
cg=$(cri_cgroups)
[ -z "$cg" ] && pass "[$H] no container cgroup is left" || fail "[$H] cgroups left: $cg"

if [ "$FAILS" -ne 0 ]; then
	echo "FAIL: $FAILS check(s) failed (logs in $T; KEEP=1 keeps them)"
	[ "${KEEP:-0}" = 1 ] || grep -E 'level=(error|warning)' "$T/containerd.log" | tail -20
	exit 1
fi
echo PASS
exit 0
