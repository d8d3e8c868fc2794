# tests/bench: make bench-vm: a real microVM per group (vm.launch "qemu"): boot to an answering
# agent, stdout throughput through the guest's virtio-vsock, call round trips, and the memory
# of shim + vsock backend + QEMU. Prints figures from one run; asserts nothing about speed.
EXTRA_DIST += tests/bench/bench-vm.sh
bench-vm: shim/vmshim contrib/agent/vmshim-agent contrib/vsock/vmshim-vsock tests/bench/bench-control
	@top_builddir='$(abs_top_builddir)' top_srcdir='$(abs_top_srcdir)' \
		$(SHELL) $(srcdir)/tests/bench/bench-vm.sh
.PHONY: bench-vm
