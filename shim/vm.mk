# shim/vm-*.c: QMP, block hot-add, the bring-up lock and the microVM's root filesystem share,
# linked into vmshim as shim_vm_files.
shim_vm_files = shim/vm.h shim/vm-qmp.c shim/vm-disk.c shim/vm-lock.c shim/vm-share.c
