#!/bin/bash
# bench-cri.sh: `make bench-cri`. Kubernetes pods through containerd's CRI plugin, on the vmshim
# handler, on the runc handler (containerd's own shim) and, when QEMU and the guest kernel are
# here, on the vmshim-qemu handler (a TCG microVM per pod), in one run of one private containerd
# (tests/integration/cri_lib.sh: host-network pods, local images, no CNI). bench-cri.py times
# RunPodSandbox + CreateContainer + StartContainer per pod (median of BENCH_PODS, default 10;
# BENCH_QEMU_PODS, default 3, microVMs) and prints the memory per pod of the shim and of the VM
# (the local VM's agent; a microVM's QEMU, vmshim-vsock and mounter).
# Prints figures; asserts nothing. The shim runs at log level info, as in production.
set -u
: "${top_builddir:=$PWD}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
# shellcheck source=../integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"
# shellcheck source=../integration/cri_lib.sh
. "$top_srcdir/tests/integration/cri_lib.sh"
CRI_VMSHIM_CONFIG='{"log_level": "info"}'

cri_need
cri_setup
qemu_spec=
if (need_qemu_vsock && need_static_agent) >/dev/null 2>&1 &&
	"$top_srcdir/contrib/guest/build-guest" --out "$T/guest" --agent "$AGENT" >"$T/build-guest.log" 2>&1; then
	sed -i 's/"log_level": "debug"/"log_level": "info"/' "$T/vmshim-qemu.json"
	qemu_spec="vmshim-qemu:$SHIM:$(command -v qemu-system-x86_64):$B/contrib/vsock/vmshim-vsock"
else
	echo "vmshim-qemu: not measured (no QEMU with vhost-user-vsock, no static agent or no guest kernel)"
fi
echo "vmshim bench-cri: $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), containerd $(containerd --version | awk '{print $3}'), ${BENCH_PODS:-10} pods per handler"
CRI_PYDIR=$T/py "$PY" "$top_srcdir/tests/bench/bench-cri.py" "$T/containerd.sock" "$T" \
	"runc:$(command -v containerd-shim-runc-v2)" "vmshim:$SHIM:$AGENT" $qemu_spec
