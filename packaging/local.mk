# packaging/, man pages, completion, config and units: what make install lays out.
#
#   $(bindir)   vmshim, vmshimctl, containerd-shim-vmshim-v2 -> vmshim (containerd looks up
#               runtime io.containerd.vmshim.v2 by that binary name)
#   $(sbindir)  vmshim-agent (a system daemon of the guest: see docs/INSTALL.md)
#   $(sysconfdir)/vmshim/config.json          every key at its default (docs/CONTRACT.md 3)
#   $(docdir)/examples/local-vm.json          a config for the embedded local VM
#   $(datadir)/bash-completion/completions/vmshimctl
#   $(systemdsystemunitdir)/vmshim-agent.service   for guest images
#   $(mandir)   vmshim(8) (and containerd-shim-vmshim-v2(8), a symlink to it), vmshimctl(1),
#               vmshim-agent(8), vmshim.json(5)

dist_man_MANS = \
	contrib/man/vmshim.8 \
	contrib/man/vmshimctl.1 \
	contrib/man/vmshim-agent.8 \
	contrib/man/vmshim-vsock.8 \
	contrib/man/vmshim.json.5

vmshimconfdir = $(sysconfdir)/vmshim
dist_vmshimconf_DATA = contrib/config/config.json

examplesdir = $(docdir)/examples
dist_examples_DATA = contrib/config/local-vm.json
EXTRA_DIST += docs/INSTALL.md

bashcompletiondir = $(datadir)/bash-completion/completions
dist_bashcompletion_DATA = contrib/completion/vmshimctl

# Overridable at make time, e.g. `make install systemdsystemunitdir=/lib/systemd/system`.
systemdsystemunitdir = $(prefix)/lib/systemd/system
systemdsystemunit_DATA = contrib/systemd/vmshim-agent.service
CLEANFILES += contrib/systemd/vmshim-agent.service
EXTRA_DIST += contrib/systemd/vmshim-agent.service.in

# The unit names the agent by its installed path, so it is made at build time from the .in.
contrib/systemd/vmshim-agent.service: $(srcdir)/contrib/systemd/vmshim-agent.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib/systemd && \
	agent=`echo vmshim-agent | sed '$(transform)'` && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e "s|@vmshim_agent[@]|$$agent|g" \
		$(srcdir)/contrib/systemd/vmshim-agent.service.in >$@.tmp && mv $@.tmp $@

# containerd-shim-vmshim-v2: a relative symlink, so DESTDIR and package relocation keep working.
# The name follows --program-prefix/--program-transform-name like vmshim's own.
install-exec-hook:
	@shim=`echo vmshim | sed '$(transform)'`; \
	link=`echo containerd-shim-vmshim-v2 | sed '$(transform)'`; \
	$(MKDIR_P) "$(DESTDIR)$(bindir)" && \
	echo " ln -sf $$shim '$(DESTDIR)$(bindir)/$$link'"; \
	ln -sf "$$shim" "$(DESTDIR)$(bindir)/$$link"

# Its manual page is vmshim(8), under the link's name too.
install-data-hook:
	@page=`echo vmshim | sed '$(transform)'`.8; \
	link=`echo containerd-shim-vmshim-v2 | sed '$(transform)'`.8; \
	$(MKDIR_P) "$(DESTDIR)$(man8dir)" && \
	echo " ln -sf $$page '$(DESTDIR)$(man8dir)/$$link'"; \
	ln -sf "$$page" "$(DESTDIR)$(man8dir)/$$link"

uninstall-hook:
	@link=`echo containerd-shim-vmshim-v2 | sed '$(transform)'`; \
	echo " rm -f '$(DESTDIR)$(bindir)/$$link' '$(DESTDIR)$(man8dir)/$$link.8'"; \
	rm -f "$(DESTDIR)$(bindir)/$$link" "$(DESTDIR)$(man8dir)/$$link.8"


EXTRA_DIST += \
	LICENSE \
	contrib/package \
	contrib/package-smoke \
	packaging/rpm/vmshim.spec \
	packaging/debian/changelog \
	packaging/debian/control \
	packaging/debian/copyright \
	packaging/debian/rules \
	packaging/debian/source/format \
	packaging/debian/vmshim.install \
	packaging/debian/vmshim-agent.install \
	packaging/debian/vmshim.lintian-overrides \
	packaging/debian/vmshim-agent.lintian-overrides \
	packaging/debian/vmshim-guest.lintian-overrides \
	packaging/debian/vmshim-guest.postinst \
	packaging/debian/vmshim-guest.postrm
