# shim/: the vmshim daemon. The io data plane lists its sources in shim/io.mk as
# shim_io_files; vmshimctl lives in shim/ctl/local.mk.
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
	shim/task.c \
	shim/task-lifecycle.c \
	shim/task-control.c \
	shim/task-query.c \
	$(shim_io_files) \
	$(shim_vm_files)
shim_vmshim_CFLAGS = $(AM_CFLAGS)
# CONFINE_LIBS (common/local.mk) carries libseccomp for the self-confinement.
shim_vmshim_LDFLAGS = $(AM_LDFLAGS) $(LINKAGE_LDFLAGS)
shim_vmshim_LDADD = $(CONFINE_LIBS) $(COMMON_LIBS)

# The same daemon linked dynamically, for valgrind.sh only: memcheck replaces malloc through
# the dynamic loader, which a static vmshim does not use.
if STATIC_LINKAGE
check_PROGRAMS += tests/integration/vmshim-dynamic
tests_integration_vmshim_dynamic_SOURCES = $(shim_vmshim_SOURCES)
tests_integration_vmshim_dynamic_CFLAGS = $(AM_CFLAGS)
tests_integration_vmshim_dynamic_LDADD = $(shim_vmshim_LDADD)
endif

# Integration tests of the daemon: real binaries on a private runtime directory.
SHIM_ITESTS = \
	tests/integration/shim_cli.sh \
	tests/integration/shim_tasks.sh \
	tests/integration/shim_ctl.sh \
	tests/integration/shim_badinput.sh \
	tests/integration/shim_agent.sh \
	tests/integration/shim_load.sh \
	tests/integration/shim_fault_trickle.sh \
	tests/integration/shim_fault_busyloop.sh
TESTS += $(SHIM_ITESTS)
# The threaded daemon (accept thread, loop, workers) under load, run again under TSan.
TSAN_TESTS += tests/integration/shim_load.sh tests/integration/shim_tasks.sh \
	tests/integration/shim_agent.sh
EXTRA_DIST += $(SHIM_ITESTS) tests/integration/lib.sh
check_PROGRAMS += tests/integration/shim_rawclient tests/integration/shim_load
tests_integration_shim_rawclient_SOURCES = tests/integration/shim_rawclient.c
tests_integration_shim_rawclient_CFLAGS = $(AM_CFLAGS) $(TESTLIB_CFLAGS)
tests_integration_shim_rawclient_LDADD = $(TESTLIB_LIBS) $(COMMON_LIBS)
tests_integration_shim_load_SOURCES = tests/integration/shim_load.c
tests_integration_shim_load_CFLAGS = $(AM_CFLAGS)
tests_integration_shim_load_LDADD = $(COMMON_LIBS)
