# tests/integration/limits: the daemon's limits and life-cycle edges (accept thread, loop,
# worker pool, configuration); shim_limits_client is their hostile or greedy client.
LIMITS_ITESTS = \
	tests/integration/shim_limits_accept.sh \
	tests/integration/shim_limits_workers.sh \
	tests/integration/shim_limits_agent.sh \
	tests/integration/shim_limits_xdg.sh
TESTS += $(LIMITS_ITESTS)
EXTRA_DIST += $(LIMITS_ITESTS)
check_PROGRAMS += tests/integration/shim_limits_client
tests_integration_shim_limits_client_SOURCES = tests/integration/shim_limits_client.c
tests_integration_shim_limits_client_CFLAGS = $(AM_CFLAGS) $(TESTLIB_CFLAGS)
tests_integration_shim_limits_client_LDADD = $(TESTLIB_LIBS) $(COMMON_LIBS)
