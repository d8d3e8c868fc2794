# tests/integration/stdio: the stdio data plane end to end through vmshim + vmshim-agent
# (shim_stdio_*.sh), driven by stdio_client playing the runtime's side of the FIFOs.
check_PROGRAMS += tests/integration/stdio_client
tests_integration_stdio_client_SOURCES = tests/integration/stdio_client.c
tests_integration_stdio_client_CFLAGS = $(AM_CFLAGS)
tests_integration_stdio_client_LDADD = $(COMMON_LIBS)
STDIO_ITESTS = \
	tests/integration/shim_stdio_bulk.sh \
	tests/integration/shim_stdio_runs.sh \
	tests/integration/shim_stdio_edge.sh \
	tests/integration/shim_stdio_unread.sh \
	tests/integration/shim_stdio_slowstdin.sh \
	tests/integration/shim_stdio_chatty.sh \
	tests/integration/shim_stdio_splice.sh
TESTS += $(STDIO_ITESTS)
EXTRA_DIST += $(STDIO_ITESTS)
