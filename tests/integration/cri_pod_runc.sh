#!/bin/sh
# cri_pod_runc.sh: the CRI pod rows (cri_pod.sh) on the runc runtime handler.
CRI_HANDLER=runc
. "$(dirname "$0")/cri_pod.sh"
