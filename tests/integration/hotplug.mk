# tests/integration/hotplug: block rootfs hot-add through a real QEMU (qemu-system-x86_64,
# skipped with 77 when it is not installed) and the per-VM bring-up lock (docs/CONTRACT.md 5.3).
# qmp_cmd runs one QMP command (the tests' "guest" monitor); qmp_proxy sits between the shim
# and QEMU to kill QEMU at a chosen command or slow a command down.
HOTPLUG_ITESTS = \
	tests/integration/hotplug_disk.sh \
	tests/integration/hotplug_faults.sh \
	tests/integration/hotplug_bringup.sh
TESTS += $(HOTPLUG_ITESTS)
EXTRA_DIST += $(HOTPLUG_ITESTS) tests/integration/hotplug_lib.sh
check_PROGRAMS += tests/integration/qmp_cmd tests/integration/qmp_proxy
tests_integration_qmp_cmd_SOURCES = tests/integration/qmp_cmd.c $(shim_vm_files)
tests_integration_qmp_cmd_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/shim
tests_integration_qmp_cmd_LDADD = $(COMMON_LIBS)
tests_integration_qmp_proxy_SOURCES = tests/integration/qmp_proxy.c
tests_integration_qmp_proxy_CFLAGS = $(AM_CFLAGS)
tests_integration_qmp_proxy_LDADD = $(COMMON_LIBS)
