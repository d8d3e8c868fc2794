#!/bin/sh
# cri_pod_vmshim.sh: the CRI pod rows (cri_pod.sh) on the vmshim runtime handler.
CRI_HANDLER=vmshim
. "$(dirname "$0")/cri_pod.sh"
