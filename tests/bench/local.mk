# tests/bench/: benchmarks, run by hand (make bench-control, make bench-stdio); they print
# figures and assert nothing about speed (docs/PERFORMANCE.md).
include $(srcdir)/tests/bench/control.mk
include $(srcdir)/tests/bench/stdio.mk
