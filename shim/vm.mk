# shim/vm-*.c: QMP, block hot-add, the bring-up lock, the microVM's root filesystem share and
# its pod cgroup, linked into vmshim as shim_vm_files.
shim_vm_files = shim/vm.h shim/vm-qmp.c shim/vm-disk.c shim/vm-lock.c shim/vm-share.c \
	shim/vm-cgroup.c
