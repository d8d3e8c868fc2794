# shim/vm-*.c: QMP, block hot-add and the bring-up lock, linked into vmshim as shim_vm_files.
shim_vm_files = shim/vm.h shim/vm-qmp.c shim/vm-disk.c shim/vm-lock.c

check_PROGRAMS += tests/unit/test_vm
TESTS += tests/unit/test_vm
TSAN_TESTS += tests/unit/test_vm
tests_unit_test_vm_SOURCES = tests/unit/test_vm.c $(shim_vm_files)
tests_unit_test_vm_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_vm_LDADD = $(COMMON_LIBS) $(CUNIT_LIBS)
