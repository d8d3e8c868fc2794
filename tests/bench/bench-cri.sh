#!/bin/bash
# bench-cri.sh: `make bench-cri`. Kubernetes pods through containerd's CRI plugin, on the vmshim
# handler and on the runc handler (containerd's own shim), in one run of one private containerd
# (tests/integration/cri_lib.sh: host-network pods, local images, no CNI). bench-cri.py times
# RunPodSandbox + CreateContainer + StartContainer per pod (median of BENCH_PODS, default 10)
# and prints the memory per pod of the shim and, on vmshim, of the agent (the local VM).
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
echo "vmshim bench-cri: $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), containerd $(containerd --version | awk '{print $3}'), ${BENCH_PODS:-10} pods per handler"
CRI_PYDIR=$T/py "$PY" "$top_srcdir/tests/bench/bench-cri.py" "$T/containerd.sock" "$T" \
	"runc:$(command -v containerd-shim-runc-v2)" "vmshim:$SHIM:$AGENT"
