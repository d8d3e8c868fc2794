# contrib/vsock/: vmshim-vsock, the vhost-user-vsock device backend for a QEMU guest.
bin_PROGRAMS += contrib/vsock/vmshim-vsock
# Everything but main.c, which tests/unit/test_vsock links too.
contrib_vsock_files = \
	contrib/vsock/vsock.h \
	contrib/vsock/vhost-user.c \
	contrib/vsock/virtq.c \
	contrib/vsock/packet.c \
	contrib/vsock/conn.c \
	contrib/vsock/host.c
contrib_vsock_vmshim_vsock_SOURCES = contrib/vsock/main.c $(contrib_vsock_files)
contrib_vsock_vmshim_vsock_CFLAGS = $(AM_CFLAGS)
contrib_vsock_vmshim_vsock_LDFLAGS = $(AM_LDFLAGS) $(LINKAGE_LDFLAGS)
contrib_vsock_vmshim_vsock_LDADD = $(CONFINE_LIBS) $(COMMON_LIBS)

EXTRA_DIST += docs/MICROVM.md
