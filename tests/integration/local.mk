# tests/integration/: drive the real binaries on a private runtime directory.

# Topics with helpers of their own.
include $(srcdir)/tests/integration/hotplug.mk
include $(srcdir)/tests/integration/stdio.mk
include $(srcdir)/tests/integration/limits.mk
include $(srcdir)/tests/integration/faults.mk
include $(srcdir)/tests/integration/protobuf.mk
include $(srcdir)/tests/integration/containerd.mk
include $(srcdir)/tests/integration/cri.mk
include $(srcdir)/tests/integration/vm.mk

# The daemon (vmshim).
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

# The guest agent (vmshim-agent) alone.
check_PROGRAMS += tests/integration/agent_client
tests_integration_agent_client_SOURCES = tests/integration/agent_client.c
tests_integration_agent_client_CFLAGS = $(AM_CFLAGS)
tests_integration_agent_client_LDADD = $(COMMON_LIBS)
# A fake runc (and raw agent client) for the console-socket error paths: agent_console.sh.
check_PROGRAMS += tests/integration/fake_runc
tests_integration_fake_runc_SOURCES = tests/integration/fake_runc.c
tests_integration_fake_runc_CFLAGS = $(AM_CFLAGS) $(TESTLIB_CFLAGS)
tests_integration_fake_runc_LDADD = $(TESTLIB_LIBS) $(COMMON_LIBS)
TESTS += \
	tests/integration/agent_handshake.sh \
	tests/integration/agent_process.sh \
	tests/integration/agent_oci.sh \
	tests/integration/agent_console.sh \
	tests/integration/agent_regress.sh
EXTRA_DIST += \
	tests/integration/agent_lib.sh \
	tests/integration/agent_handshake.sh \
	tests/integration/agent_process.sh \
	tests/integration/agent_oci.sh \
	tests/integration/agent_console.sh \
	tests/integration/agent_regress.sh

# Hostile inputs found from outside: client-named paths that must not block, statuses a client
# can act on (the daemon), and a hostile client of the agent alone.
HOSTILE_ITESTS = \
	tests/integration/shim_fifo_bundle.sh \
	tests/integration/shim_statuses.sh \
	tests/integration/agent_hostile.sh
TESTS += $(HOSTILE_ITESTS)
EXTRA_DIST += $(HOSTILE_ITESTS)

# vmshim-vsock against QEMU and the guest kernel: vsock_peer runs in the guest (static, no
# sanitizers: the guest has no libraries), vsock_host on the host. vm_agent.sh runs
# vmshim-agent in the real guest (make guest's image): Ping, a process, a hot-added disk found
# by serial, mounted, read, unmounted and unplugged.
check_PROGRAMS += tests/integration/vsock_peer tests/integration/vsock_host
tests_integration_vsock_peer_SOURCES = tests/integration/vsock_peer.c
tests_integration_vsock_peer_CFLAGS = -std=gnu11 -O2 $(WARN_CFLAGS)
tests_integration_vsock_peer_LDFLAGS = -static
tests_integration_vsock_host_SOURCES = tests/integration/vsock_host.c
tests_integration_vsock_host_CFLAGS = $(AM_CFLAGS)
VM_ITESTS = tests/integration/vm_vsock.sh tests/integration/vm_agent.sh
TESTS += $(VM_ITESTS)
EXTRA_DIST += $(VM_ITESTS)
