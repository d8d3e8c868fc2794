# contrib/guest/: the guest image of a vmshim microVM, and the tests that boot it.
#
# make guest builds $(builddir)/guest/ (vmlinux, initramfs.cpio.gz, kernel-version) from
# Debian's kernel package, busybox-static and this build's vmshim-agent, which must be
# linked statically (the default --with-linkage=auto does when the static libraries exist).
guest: contrib/agent/vmshim-agent
	$(SHELL) $(srcdir)/contrib/guest/build-guest --agent contrib/agent/vmshim-agent --out guest
.PHONY: guest
clean-local: clean-guest
clean-guest:
	rm -rf guest
.PHONY: clean-guest
EXTRA_DIST += contrib/guest/build-guest contrib/guest/extract-vmlinux contrib/guest/init

# vmshim-vsock against QEMU and the guest kernel: vsock_peer runs in the guest (static, no
# sanitizers: the guest has no libraries), vsock_host on the host.
check_PROGRAMS += tests/integration/vsock_peer tests/integration/vsock_host
tests_integration_vsock_peer_SOURCES = tests/integration/vsock_peer.c
tests_integration_vsock_peer_CFLAGS = -std=gnu11 -O2 $(WARN_CFLAGS)
tests_integration_vsock_peer_LDFLAGS = -static
tests_integration_vsock_host_SOURCES = tests/integration/vsock_host.c
tests_integration_vsock_host_CFLAGS = $(AM_CFLAGS)
# vmshim-agent in the real guest (make guest's image): Ping, a process, a hot-added disk
# found by serial, mounted, read, unmounted and unplugged.
TESTS += tests/integration/vm_vsock.sh tests/integration/vm_agent.sh
EXTRA_DIST += tests/integration/vm_vsock.sh tests/integration/vm_agent.sh
