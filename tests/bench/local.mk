# tests/bench/: benchmarks, run by hand (make bench-control, bench-stdio, bench-containerd,
# bench-cri, bench-vm); they print figures and assert nothing about speed (docs/PERFORMANCE.md).
include $(srcdir)/tests/bench/control.mk
include $(srcdir)/tests/bench/stdio.mk
include $(srcdir)/tests/bench/containerd.mk
include $(srcdir)/tests/bench/cri.mk
include $(srcdir)/tests/bench/vm.mk
