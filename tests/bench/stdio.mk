# tests/bench: make bench-stdio (the stdio data plane): vmshim stdout/stdin throughput next to
# a direct pipe and a socat relay chain of the same shape, and the shim's CPU per GiB.
# BENCH_MIB=N changes the size (default 1024).
EXTRA_DIST += tests/bench/bench-stdio.sh
bench-stdio: shim/vmshim contrib/agent/vmshim-agent tests/integration/stdio_client \
		tests/integration/shim_rawclient
	top_builddir='$(abs_top_builddir)' top_srcdir='$(abs_top_srcdir)' \
		$(SHELL) $(srcdir)/tests/bench/bench-stdio.sh
.PHONY: bench-stdio
