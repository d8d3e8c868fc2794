# tests/bench: make bench-stdio (the stdio data plane): vmshim stdout/stdin throughput next to
# a socat chain, a minimal C relay chain (relay.c) of the same shape and a direct pipe, with the
# daemons' CPU per GiB and syscalls per MiB. BENCH_MIB=N changes the size per run (default
# 1024), BENCH_REPS the rounds (default 3); VMSHIM_IO_COPY=1 measures the copy fallback.
noinst_PROGRAMS += tests/bench/relay
tests_bench_relay_SOURCES = tests/bench/relay.c
tests_bench_relay_CFLAGS = $(AM_CFLAGS)
EXTRA_DIST += tests/bench/bench-stdio.sh
bench-stdio: shim/vmshim contrib/agent/vmshim-agent tests/bench/relay \
		tests/integration/shim_rawclient
	top_builddir='$(abs_top_builddir)' top_srcdir='$(abs_top_srcdir)' \
		$(SHELL) $(srcdir)/tests/bench/bench-stdio.sh
.PHONY: bench-stdio
