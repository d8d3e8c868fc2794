# shim/ctl/: vmshimctl, the command-line client of the control API.
bin_PROGRAMS += shim/ctl/vmshimctl
shim_ctl_vmshimctl_SOURCES = \
	shim/ctl/ctl.h \
	shim/ctl/vmshimctl.c \
	shim/ctl/ctl-run.c
shim_ctl_vmshimctl_CFLAGS = $(AM_CFLAGS)
shim_ctl_vmshimctl_LDFLAGS = $(AM_LDFLAGS) $(LINKAGE_LDFLAGS)
shim_ctl_vmshimctl_LDADD = $(COMMON_LIBS)
