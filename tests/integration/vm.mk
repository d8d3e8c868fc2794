# vmshim with vm.launch "qemu": the shim launches vmshim-vsock and QEMU with the guest image of
# `make guest` (contrib/guest/) and drives containers in the real guest; faults and failed
# boots. One script, as few guests as possible (booting under TCG is the cost).
TESTS += tests/integration/vm_shim.sh
EXTRA_DIST += tests/integration/vm_shim.sh
