#!/bin/sh
# cri_pod_qemu.sh: the CRI pod rows (cri_pod.sh) on the vmshim-qemu runtime handler: each pod
# in a real microVM (TCG here), its containers' root filesystems shared into it over 9p.
CRI_HANDLER=vmshim-qemu
. "$(dirname "$0")/cri_pod.sh"
