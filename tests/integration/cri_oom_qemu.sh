#!/bin/sh
# cri_oom_qemu.sh: the CRI OOM rows (cri_oom.sh) on the vmshim-qemu handler: the guest's OOM
# killer takes the container in its own cgroup inside the microVM.
CRI_HANDLER=vmshim-qemu
. "$(dirname "$0")/cri_oom.sh"
