# shim/: the vmshim daemon. The stdio data plane (shim/io.mk) and the VM's files
# (shim/vm.mk) list their sources as shim_io_files and shim_vm_files; vmshimctl lives in
# shim/ctl/local.mk.
include $(srcdir)/shim/io.mk
include $(srcdir)/shim/vm.mk

bin_PROGRAMS += shim/vmshim
shim_vmshim_SOURCES = \
	shim/shim.h \
	shim/main.c \
	shim/config.c \
	shim/accept.c \
	shim/loop.c \
	shim/worker.c \
	shim/guest.c \
	shim/events.c \
	shim/forward.c shim/forward.h \
	shim/task.c \
	shim/task-lifecycle.c \
	shim/task-control.c \
	shim/task-query.c \
	shim/containerd.c \
	shim/vm-local.c \
	shim/vm-qemu.c \
	shim/guest-reply.c \
	$(shim_io_files) \
	$(shim_vm_files)
shim_vmshim_CFLAGS = $(AM_CFLAGS)
# CONFINE_LIBS (common/local.mk) carries libseccomp for the self-confinement.
shim_vmshim_LDFLAGS = $(AM_LDFLAGS) $(LINKAGE_LDFLAGS)
shim_vmshim_LDADD = $(CONFINE_LIBS) $(COMMON_LIBS)

