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

# Installed (and packaged) so the image can be built on the host that runs the VMs, into the
# place vm.kernel / vm.initrd default to:
#   $(pkglibexecdir)/build-guest --agent $(sbindir)/vmshim-agent --out $(guestdir)
guesttoolsdir = $(pkglibexecdir)
guesttools_SCRIPTS = contrib/guest/build-guest contrib/guest/extract-vmlinux contrib/guest/init
# make install also installs the image itself when `make guest` built it in this tree.
install-data-local: install-guest-image
install-guest-image:
	@if [ -f guest/vmlinux ] && [ -f guest/initramfs.cpio.gz ]; then \
		$(MKDIR_P) '$(DESTDIR)$(guestdir)' && \
		$(INSTALL_DATA) guest/vmlinux guest/initramfs.cpio.gz guest/kernel-version \
			'$(DESTDIR)$(guestdir)' && \
		echo "installed the guest image in $(DESTDIR)$(guestdir)"; \
	else \
		echo "no guest image built (make guest): not installed in $(guestdir)"; \
	fi
uninstall-local:
	rm -f '$(DESTDIR)$(guestdir)/vmlinux' '$(DESTDIR)$(guestdir)/initramfs.cpio.gz' \
		'$(DESTDIR)$(guestdir)/kernel-version'
.PHONY: install-guest-image

# The tests that boot it (vm_vsock.sh, vm_agent.sh) are in tests/integration/local.mk.
