# contrib/vsock/: vmshim-vsock, the vhost-user-vsock device backend for a QEMU guest.
bin_PROGRAMS += contrib/vsock/vmshim-vsock
contrib_vsock_vmshim_vsock_SOURCES = \
	contrib/vsock/vsock.h \
	contrib/vsock/main.c \
	contrib/vsock/vhost-user.c \
	contrib/vsock/virtq.c \
	contrib/vsock/packet.c \
	contrib/vsock/conn.c \
	contrib/vsock/host.c
contrib_vsock_vmshim_vsock_CFLAGS = $(AM_CFLAGS)
contrib_vsock_vmshim_vsock_LDFLAGS = $(AM_LDFLAGS) $(LINKAGE_LDFLAGS)
contrib_vsock_vmshim_vsock_LDADD = $(SECCOMP_CONF_LIBS) $(COMMON_LIBS)

# The vhost-user side and both data paths without QEMU: the test plays QEMU and the driver.
check_PROGRAMS += tests/unit/test_vsock
TESTS += tests/unit/test_vsock
tests_unit_test_vsock_SOURCES = tests/unit/test_vsock.c contrib/vsock/vsock.h \
	contrib/vsock/vhost-user.c contrib/vsock/virtq.c contrib/vsock/packet.c \
	contrib/vsock/conn.c contrib/vsock/host.c
tests_unit_test_vsock_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) -I$(top_srcdir)/contrib/vsock
tests_unit_test_vsock_LDADD = $(COMMON_LIBS) $(CUNIT_LIBS)
EXTRA_DIST += docs/MICROVM.md
