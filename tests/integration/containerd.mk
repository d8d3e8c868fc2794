# tests/integration/containerd_*.sh: vmshim driven by a private, real containerd (Debian's
# containerd, ctr, runc and busybox-static), each row also run against containerd's runc shim
# as the control. containerd_lib.sh starts and stops the containerd; without containerd or
# root the tests skip (77).
CONTAINERD_ITESTS = \
	tests/integration/containerd_run.sh \
	tests/integration/containerd_lifecycle.sh \
	tests/integration/containerd_restart.sh \
	tests/integration/containerd_group.sh \
	tests/integration/containerd_shimkill.sh
TESTS += $(CONTAINERD_ITESTS)
EXTRA_DIST += $(CONTAINERD_ITESTS) tests/integration/containerd_lib.sh

