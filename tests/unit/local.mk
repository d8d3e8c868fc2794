# tests/unit/: one CUnit program per module.
UNIT_LDADD = $(TESTLIB_LIBS) $(COMMON_LIBS) $(CUNIT_LIBS)
UNIT_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(TESTLIB_CFLAGS)

UNIT_TESTS = \
	tests/unit/test_util \
	tests/unit/test_frame \
	tests/unit/test_ptimer \
	tests/unit/test_mount_list \
	tests/unit/test_msg \
	tests/unit/test_msg_pb \
	tests/unit/test_transport \
	tests/unit/test_log \
	tests/unit/test_protocol \
	tests/unit/test_rpc
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
TSAN_TESTS += tests/unit/test_rpc tests/unit/test_log
EXTRA_DIST += tests/unit/unit.h

tests_unit_test_util_SOURCES = tests/unit/test_util.c
tests_unit_test_util_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_util_LDADD = $(UNIT_LDADD)
tests_unit_test_frame_SOURCES = tests/unit/test_frame.c
tests_unit_test_frame_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_frame_LDADD = $(UNIT_LDADD)
tests_unit_test_ptimer_SOURCES = tests/unit/test_ptimer.c
tests_unit_test_ptimer_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ptimer_LDADD = $(UNIT_LDADD)
tests_unit_test_mount_list_SOURCES = tests/unit/test_mount_list.c
tests_unit_test_mount_list_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_mount_list_LDADD = $(UNIT_LDADD)
tests_unit_test_msg_SOURCES = tests/unit/test_msg.c
tests_unit_test_msg_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_msg_LDADD = $(UNIT_LDADD)
tests_unit_test_msg_pb_SOURCES = tests/unit/test_msg_pb.c
tests_unit_test_msg_pb_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_msg_pb_LDADD = $(UNIT_LDADD)
tests_unit_test_transport_SOURCES = tests/unit/test_transport.c
tests_unit_test_transport_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_transport_LDADD = $(UNIT_LDADD)
tests_unit_test_log_SOURCES = tests/unit/test_log.c
tests_unit_test_log_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_log_LDADD = $(UNIT_LDADD)
tests_unit_test_protocol_SOURCES = tests/unit/test_protocol.c
tests_unit_test_protocol_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_protocol_LDADD = $(UNIT_LDADD)
tests_unit_test_rpc_SOURCES = tests/unit/test_rpc.c
tests_unit_test_rpc_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_rpc_LDADD = $(UNIT_LDADD)

# Forks confined children and checks what the kernel refuses and what still works. The filter
# must also let the TSan runtime work, so it runs under TSan too.
check_PROGRAMS += tests/unit/test_confine
TESTS += tests/unit/test_confine
TSAN_TESTS += tests/unit/test_confine
tests_unit_test_confine_SOURCES = tests/unit/test_confine.c
tests_unit_test_confine_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_confine_LDADD = $(CONFINE_LIBS) $(UNIT_LDADD)

# Modules of the shim, tested alone: the stdio data plane, the VM (QMP, hot-add, bring-up
# lock), the worker pool's bring-up limit, the configuration (test_config.c includes
# shim/config.c itself, to reach its key table), and the containerd glue (groups, runtime
# options, the address file, DeleteResponse).
UNIT_SHIM_TESTS = \
	tests/unit/test_io \
	tests/unit/test_vm \
	tests/unit/test_vm_cgroup \
	tests/unit/test_vm_share \
	tests/unit/test_worker \
	tests/unit/test_config \
	tests/unit/test_containerd
check_PROGRAMS += $(UNIT_SHIM_TESTS)
TESTS += $(UNIT_SHIM_TESTS)
TSAN_TESTS += tests/unit/test_vm tests/unit/test_worker
tests_unit_test_io_SOURCES = tests/unit/test_io.c $(shim_io_files)
tests_unit_test_io_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_io_LDADD = $(UNIT_LDADD)
tests_unit_test_vm_share_SOURCES = tests/unit/test_vm_share.c shim/vm-share.c
tests_unit_test_vm_share_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_vm_share_LDADD = $(UNIT_LDADD)
tests_unit_test_vm_cgroup_SOURCES = tests/unit/test_vm_cgroup.c shim/vm-cgroup.c
tests_unit_test_vm_cgroup_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_vm_cgroup_LDADD = $(UNIT_LDADD)
tests_unit_test_vm_SOURCES = tests/unit/test_vm.c $(shim_vm_files)
tests_unit_test_vm_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_vm_LDADD = $(UNIT_LDADD)
tests_unit_test_worker_SOURCES = tests/unit/test_worker.c shim/worker.c
tests_unit_test_worker_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_worker_LDADD = $(UNIT_LDADD)
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_config_LDADD = $(UNIT_LDADD)
tests_unit_test_containerd_SOURCES = tests/unit/test_containerd.c shim/containerd.c
tests_unit_test_containerd_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_containerd_LDADD = $(UNIT_LDADD)

# The task table (shim/task*.c) against a fake guest that test_task.c defines in place of
# shim/guest.c; the rest of the shim it needs (workers, stdio, events) is the real code.
check_PROGRAMS += tests/unit/test_task
TESTS += tests/unit/test_task
TSAN_TESTS += tests/unit/test_task
tests_unit_test_task_SOURCES = tests/unit/test_task.c shim/task.c shim/task-lifecycle.c \
	shim/task-control.c shim/task-query.c shim/events.c shim/forward.c shim/forward.h \
	shim/guest-reply.c shim/worker.c shim/config.c $(shim_io_files) $(shim_vm_files)
tests_unit_test_task_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_task_LDADD = $(UNIT_LDADD)

# No two of the shim's files call each other (docs/ARCHITECTURE.md, "Calls between files"):
# read from the objects of shim/vmshim and common/ in the build directory.
TESTS += tests/unit/call_cycles.sh
EXTRA_DIST += tests/unit/call_cycles.sh

# vmshim-vsock's vhost-user side and both data paths without QEMU: the test plays QEMU and the
# driver.
check_PROGRAMS += tests/unit/test_vsock
TESTS += tests/unit/test_vsock
tests_unit_test_vsock_SOURCES = tests/unit/test_vsock.c $(contrib_vsock_files)
tests_unit_test_vsock_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/contrib/vsock
tests_unit_test_vsock_LDADD = $(UNIT_LDADD)

# Only the unit tests: what the packages run at build time (the integration tests drive real
# processes and may need root or runc, which a package build does not have).
check-unit:
	@tests=`for t in $(TESTS); do case $$t in tests/unit/*) printf '%s ' $$t;; esac; done`; \
	echo "check-unit: $$tests"; \
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$$tests"
.PHONY: check-unit
