#!/bin/sh
# cri_concurrent_runc.sh: the CRI concurrency rows (cri_concurrent.sh) on the runc runtime handler.
CRI_HANDLER=runc
. "$(dirname "$0")/cri_concurrent.sh"
