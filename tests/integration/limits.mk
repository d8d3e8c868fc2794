# tests/integration/limits: the daemon's limits and life-cycle edges (accept thread, loop,
# worker pool, configuration), registered here by the limits work.
LIMITS_ITESTS = \
	tests/integration/shim_limits_accept.sh \
	tests/integration/shim_limits_workers.sh \
	tests/integration/shim_limits_agent.sh \
	tests/integration/shim_limits_xdg.sh
TESTS += $(LIMITS_ITESTS) tests/unit/test_config
EXTRA_DIST += $(LIMITS_ITESTS)
check_PROGRAMS += tests/integration/shim_limits_client tests/unit/test_config
tests_integration_shim_limits_client_SOURCES = tests/integration/shim_limits_client.c
tests_integration_shim_limits_client_CFLAGS = $(AM_CFLAGS) $(TESTLIB_CFLAGS)
tests_integration_shim_limits_client_LDADD = $(TESTLIB_LIBS) $(COMMON_LIBS)

# CUnit test of shim/config.c alone (it needs only libcommon).
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) -I$(top_srcdir)/shim
tests_unit_test_config_LDADD = $(COMMON_LIBS) $(CUNIT_LIBS)
