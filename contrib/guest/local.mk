# contrib/guest/: the guest image of a vmshim microVM.
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

# The tests that boot it (vm_vsock.sh, vm_agent.sh) are in tests/integration/local.mk.
