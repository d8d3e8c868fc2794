#!/bin/sh
# cri_oom_vmshim.sh: the CRI OOM rows (cri_oom.sh) on the vmshim runtime handler.
CRI_HANDLER=vmshim
. "$(dirname "$0")/cri_oom.sh"
