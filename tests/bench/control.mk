# tests/bench: make bench-control (the daemon's control path). Prints figures from one run on
# this machine next to their targets; asserts nothing about speed (docs/PERFORMANCE.md).
noinst_PROGRAMS += tests/bench/bench-control
tests_bench_bench_control_SOURCES = tests/bench/bench-control.c
tests_bench_bench_control_CFLAGS = $(AM_CFLAGS)
tests_bench_bench_control_LDADD = $(COMMON_LIBS)
EXTRA_DIST += tests/bench/bench-control.sh

bench-control: shim/vmshim contrib/agent/vmshim-agent tests/bench/bench-control
	@top_builddir='$(abs_top_builddir)' top_srcdir='$(abs_top_srcdir)' \
		$(SHELL) $(srcdir)/tests/bench/bench-control.sh
.PHONY: bench-control
