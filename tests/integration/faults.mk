# tests/integration/faults: fault injection and hostile peers against the real binaries
# (docs/RELIABILITY.md, "Faults and hostile peers"). fake_agent is a hostile guest agent,
# shim_fault_client a hostile/idle control client; valgrind.sh skips (77) without valgrind.
FAULT_ITESTS = \
	tests/integration/shim_fault_agent.sh \
	tests/integration/shim_fault_hostile.sh \
	tests/integration/shim_fault_stream.sh \
	tests/integration/shim_fault_client.sh \
	tests/integration/valgrind.sh \
	tests/integration/shim_fault_flood.sh \
	tests/integration/shim_shutdown.sh \
	tests/integration/shim_cli_edge.sh \
	tests/integration/shim_fault_reply.sh
TESTS += $(FAULT_ITESTS)
EXTRA_DIST += $(FAULT_ITESTS) tests/integration/shim_fault_lib.sh
check_PROGRAMS += tests/integration/fake_agent tests/integration/shim_fault_client
tests_integration_fake_agent_SOURCES = tests/integration/fake_agent.c
tests_integration_fake_agent_CFLAGS = $(AM_CFLAGS)
tests_integration_fake_agent_LDADD = $(COMMON_LIBS)
tests_integration_shim_fault_client_SOURCES = tests/integration/shim_fault_client.c
tests_integration_shim_fault_client_CFLAGS = $(AM_CFLAGS) $(TESTLIB_CFLAGS)
tests_integration_shim_fault_client_LDADD = $(TESTLIB_LIBS) $(COMMON_LIBS)
