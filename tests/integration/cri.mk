# tests/integration/cri: Kubernetes pods through containerd's CRI plugin (cri_lib.sh starts a
# private containerd with the plugin on; cri_client.py speaks the CRI from cri_api.proto, compiled
# at test time). Each row runs on the runc handler (the control) and on the vmshim handler; the
# pod and OOM rows also on the vmshim-qemu handler (a TCG microVM per pod).
# cri_pause is the pause image's program: static, and built without sanitizers, since it runs
# alone in a container's root filesystem.
CRI_ITESTS = \
	tests/integration/cri_pod_runc.sh \
	tests/integration/cri_pod_vmshim.sh \
	tests/integration/cri_pod_qemu.sh \
	tests/integration/cri_concurrent_runc.sh \
	tests/integration/cri_concurrent_vmshim.sh \
	tests/integration/cri_oom_runc.sh \
	tests/integration/cri_oom_vmshim.sh \
	tests/integration/cri_oom_qemu.sh
TESTS += $(CRI_ITESTS)
EXTRA_DIST += $(CRI_ITESTS) tests/integration/cri_lib.sh tests/integration/cri_pod.sh \
	tests/integration/cri_concurrent.sh tests/integration/cri_oom.sh tests/integration/cri_client.py \
	tests/integration/cri_oci_image.py tests/integration/cri_api.proto
check_PROGRAMS += tests/integration/cri_pause
tests_integration_cri_pause_SOURCES = tests/integration/cri_pause.c
tests_integration_cri_pause_CFLAGS = -std=gnu11 -Os $(WARN_CFLAGS)
tests_integration_cri_pause_LDFLAGS = -static -s
