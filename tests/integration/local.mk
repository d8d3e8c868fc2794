# tests/integration/: drive the real binaries on a private runtime directory.

# Hostile inputs found from outside: paths that must not block, statuses a client can act on.
HOSTILE_ITESTS = \
	tests/integration/shim_fifo_bundle.sh \
	tests/integration/shim_statuses.sh
TESTS += $(HOSTILE_ITESTS)
EXTRA_DIST += $(HOSTILE_ITESTS)
AGENT_HOSTILE_ITESTS = tests/integration/agent_hostile.sh
TESTS += $(AGENT_HOSTILE_ITESTS)
EXTRA_DIST += $(AGENT_HOSTILE_ITESTS)
