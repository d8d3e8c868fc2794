# shim/vm-*.c: QMP, block hot-add and the bring-up lock, linked into vmshim as shim_vm_files.
shim_vm_files = shim/vm.h shim/vm-qmp.c shim/vm-disk.c shim/vm-lock.c
