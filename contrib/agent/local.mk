# contrib/agent/: vmshim-agent, the reference guest agent.
sbin_PROGRAMS += contrib/agent/vmshim-agent
contrib_agent_vmshim_agent_SOURCES = \
	contrib/agent/agent.h contrib/agent/runner.h contrib/agent/stats.h \
	contrib/agent/main.c \
	contrib/agent/listen.c \
	contrib/agent/control.c \
	contrib/agent/stream.c \
	contrib/agent/proc.c \
	contrib/agent/stats.c \
	contrib/agent/runner.c \
	contrib/agent/runner-process.c \
	contrib/agent/runner-oci.c
contrib_agent_vmshim_agent_CFLAGS = $(AM_CFLAGS)
contrib_agent_vmshim_agent_LDFLAGS = $(AM_LDFLAGS) $(LINKAGE_LDFLAGS)
contrib_agent_vmshim_agent_LDADD = $(CONFINE_LIBS) $(COMMON_LIBS)

# Integration tests: the real agent on a private runtime directory.
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
