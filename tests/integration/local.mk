# tests/integration/: drive the real binaries on a private runtime directory.

# Hostile inputs found from outside: paths that must not block, statuses a client can act on.
HOSTILE_ITESTS = \
	tests/integration/shim_fifo_bundle.sh
TESTS += $(HOSTILE_ITESTS)
EXTRA_DIST += $(HOSTILE_ITESTS)
