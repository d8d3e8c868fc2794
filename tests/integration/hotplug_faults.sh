#!/bin/bash
# hotplug_faults.sh: block rootfs failures on a real QEMU, each followed by a check that the
# shim still answers State and still runs a normal container: a missing image (NOT_FOUND
# naming it), the port list exhausted (RESOURCE_EXHAUSTED), no vm.qmp (FAILED_PRECONDITION),
# and QEMU SIGKILLed between blockdev-add and device_add by qmp_proxy (UNAVAILABLE naming the
# step; the port is free again in the shim's bookkeeping: with one port, a block Create
# against QEMU restarted on the same socket succeeds).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hotplug_lib.sh"
need_bins
need_qemu
setup
start_qemu 1
start_agent

# The shim talks to QEMU through the proxy, which kills QEMU when device_add comes by.
start_proxy() {
	rm -f "$T/proxy.sock"
	"$QPROXY" --listen "$T/proxy.sock" --upstream "$T/qmp.sock" "$@" >>"$T/proxy.log" 2>&1 &
	PROXY_PID=$!
	PIDS="$PIDS $PROXY_PID"
	wait_path "$T/proxy.sock" || die "qmp_proxy did not listen"
}
start_proxy --kill-on device_add --pid "$QEMU_PID"
write_hp_config "$T/proxy.sock" 1 400 false 4
start_shim
make_image a.img
make_image b.img
make_bundle b1 'echo from-block'

# --- a missing image ---
expect_call "Create with a missing image" Create \
	"{\"id\":\"m1\",\"bundle\":\"$T/b1\",$(block_rootfs "$T/missing.img")}" \
	"^NOT_FOUND Create m1: rootfs block source $T/missing.img: No such file or directory"
expect_call "a rootfs that is not a file" Create \
	"{\"id\":\"m2\",\"bundle\":\"$T/b1\",$(block_rootfs "$T")}" '^INVALID_ARGUMENT .*not a regular file or block device'
expect_call "two block rootfs entries" Create \
	"{\"id\":\"m3\",\"bundle\":\"$T/b1\",\"rootfs\":[{\"type\":\"block\",\"source\":\"$T/a.img\"},{\"type\":\"block\",\"source\":\"$T/b.img\"}]}" \
	'^INVALID_ARGUMENT payload.rootfs\[1\]: only one block rootfs per container'
expect_call "a relative target" Create \
	"{\"id\":\"m4\",\"bundle\":\"$T/b1\",\"rootfs\":[{\"type\":\"block\",\"source\":\"$T/a.img\",\"target\":\"rel\"}]}" \
	'^INVALID_ARGUMENT payload.rootfs\[0\].target: must be an absolute path'
check_normal_container 1 "after the missing image"

# --- QEMU killed between blockdev-add and device_add ---
t0=$(date +%s%N)
expect_call "Create k1 while QEMU dies before device_add" Create \
	"{\"id\":\"k1\",\"bundle\":\"$T/b1\",$(block_rootfs "$T/a.img")}" \
	'^UNAVAILABLE Create k1: hot-add of .*/a.img for k1, step 3/3 \(virtio-blk-pci on rp0\): '
t1=$(date +%s%N)
echo "     the failed Create answered in $(((t1 - t0) / 1000000)) ms"
grep -q 'SIGKILL qemu pid' "$T/proxy.log" && pass "the proxy killed QEMU before device_add" ||
	fail "the proxy did not kill QEMU: $(cat "$T/proxy.log")"
kill -0 "$QEMU_PID" 2>/dev/null && fail "QEMU is still alive" || pass "QEMU is dead"
kill -0 "$SHIM_PID" 2>/dev/null && pass "the shim is alive" || fail "the shim died"
expect_call "State k1 (never created)" State '{"id":"k1"}' '^NOT_FOUND'
check_normal_container 2 "with QEMU dead"
expect_call "a block Create while QEMU is down" Create \
	"{\"id\":\"k2\",\"bundle\":\"$T/b1\",$(block_rootfs "$T/a.img")}" '^UNAVAILABLE Create k2: hot-add .*step 1/3'

# QEMU comes back on the same socket: the shim's QMP channel reconnects, and the one port is
# free in its bookkeeping (else this would be RESOURCE_EXHAUSTED).
wait "$QEMU_PID" 2>/dev/null
start_qemu 1
: >"$T/k3.out"
expect_call "Create k3 against the restarted QEMU (the same single port)" Create \
	"{\"id\":\"k3\",\"bundle\":\"$T/b1\",\"stdout\":\"$T/k3.out\",$(block_rootfs "$T/a.img")}" '^OK'
[ "$(vm_leftovers)" = "2 1" ] && pass "the restarted QEMU holds k3's disk" ||
	fail "restarted QEMU holds $(vm_leftovers), want 2 1"
expect_call "Start k3" Start '{"id":"k3"}' '^OK'
expect_call "Wait k3" Wait '{"id":"k3"}' '"exit_status":0'
grep -qx from-block "$T/k3.out" && pass "k3's output arrived" || fail "k3 output: '$(cat "$T/k3.out")'"

# --- the port list exhausted ---
expect_call "Create x1 with the only port taken" Create \
	"{\"id\":\"x1\",\"bundle\":\"$T/b1\",$(block_rootfs "$T/b.img")}" '^RESOURCE_EXHAUSTED .*no free hotplug port'
[ "$(vm_leftovers)" = "2 1" ] && pass "the refused Create added nothing" || fail "VM holds $(vm_leftovers)"
check_normal_container 3 "after the exhausted ports"
delete_with_ack k3 >/dev/null
grep -q '^OK' "$T/delete.k3" && pass "Delete k3: $(cat "$T/delete.k3")" || fail "Delete k3: $(cat "$T/delete.k3")"
[ "$(vm_leftovers)" = "0 0" ] && pass "nothing left in the VM" || fail "VM holds $(vm_leftovers)"
expect_call "Create x1 once the port is free" Create \
	"{\"id\":\"x1\",\"bundle\":\"$T/b1\",$(block_rootfs "$T/b.img")}" '^OK'

# --- no vm.qmp: this VM takes no hot-added disks ---
stop_shim
write_config '"workers": 2,'
start_shim
expect_call "a block Create without vm.qmp" Create \
	"{\"id\":\"q1\",\"bundle\":\"$T/b1\",$(block_rootfs "$T/a.img")}" \
	'^FAILED_PRECONDITION vm.qmp is not configured: this VM takes no hot-added disks'
check_normal_container 4 "without vm.qmp"
finish
