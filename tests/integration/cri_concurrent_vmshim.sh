#!/bin/sh
# cri_concurrent_vmshim.sh: the CRI concurrency rows (cri_concurrent.sh) on the vmshim runtime handler.
CRI_HANDLER=vmshim
. "$(dirname "$0")/cri_concurrent.sh"
