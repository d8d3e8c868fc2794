# tests/bench: make bench-containerd: vmshim next to containerd's runc shim under a private,
# real containerd (ctr run time, shim RSS/PSS with 1 and BENCH_N containers, BENCH_N groups).
# Prints figures and ratios, asserts nothing; needs root, containerd, ctr, runc, busybox.
EXTRA_DIST += tests/bench/bench-containerd.sh
bench-containerd: shim/vmshim contrib/agent/vmshim-agent
	top_builddir='$(abs_top_builddir)' top_srcdir='$(abs_top_srcdir)' \
		$(SHELL) $(srcdir)/tests/bench/bench-containerd.sh
.PHONY: bench-containerd
