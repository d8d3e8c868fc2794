#!/bin/sh
# cri_oom_runc.sh: the CRI OOM rows (cri_oom.sh) on the runc runtime handler.
CRI_HANDLER=runc
. "$(dirname "$0")/cri_oom.sh"
