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

# shim/containerd.c alone: groups, runtime options, the address file, DeleteResponse.
check_PROGRAMS += tests/unit/test_containerd
TESTS += tests/unit/test_containerd
tests_unit_test_containerd_SOURCES = tests/unit/test_containerd.c shim/containerd.c
tests_unit_test_containerd_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_containerd_LDADD = $(COMMON_LIBS) $(CUNIT_LIBS)
