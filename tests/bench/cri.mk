# tests/bench: make bench-cri (Kubernetes pods through containerd's CRI plugin): pod start-up
# time and memory per pod on the vmshim handler next to the runc handler, in one run. Needs
# root, containerd, runc and python3-grpcio; prints figures, asserts nothing.
EXTRA_DIST += tests/bench/bench-cri.sh tests/bench/bench-cri.py
bench-cri: shim/vmshim contrib/agent/vmshim-agent tests/integration/cri_pause
	@top_builddir='$(abs_top_builddir)' top_srcdir='$(abs_top_srcdir)' \
		$(SHELL) $(srcdir)/tests/bench/bench-cri.sh
.PHONY: bench-cri
