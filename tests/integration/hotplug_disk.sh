#!/bin/bash
# hotplug_disk.sh: a block rootfs end to end on a real QEMU, the real vmshim and the local-VM
# agent: Create hot-adds the image (query-block on the second monitor shows node and device),
# the agent is told to mount it by serial, the container runs and its output arrives; Delete
# (with the guest's ack played by system_reset) leaves nothing in the VM. Then the unplug
# timeout: Delete completes (OK, logged at error level), the port stays out of use and the next
# block Create gets RESOURCE_EXHAUSTED; a failed CreateContainer after the hot-add rolls it back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hotplug_lib.sh"
need_bins
need_qemu
setup
start_qemu 2
start_agent
write_hp_config "$T/qmp.sock" 2 10000 false 4
start_shim

# --- Create with a block rootfs, run, Delete with the guest's ack ---
make_image disk1.img
make_bundle b1 'echo hello-from-block'
: >"$T/c1.out"
t0=$(date +%s%N)
expect_call "Create c1 with a block rootfs" Create \
	"{\"id\":\"c1\",\"bundle\":\"$T/b1\",\"stdout\":\"$T/c1.out\",$(block_rootfs "$T/disk1.img" '["rw","noatime","fstype=ext4"]')}" \
	'^OK \{"pid":[1-9]'
t1=$(date +%s%N)
make_bundle b0 'true'
expect_call "Create c0 without one (latency baseline)" Create "{\"id\":\"c0\",\"bundle\":\"$T/b0\"}" '^OK'
t2=$(date +%s%N)
echo "     Create latency (client): with a block rootfs $(((t1 - t0) / 1000000)) ms, without $(((t2 - t1) / 1000000)) ms"
for c in c1 c0; do
	echo "     $c bring-up in the shim: $(grep "\"id\":\"$c\"" "$T/shim.log" | grep -o 'bring-up end after [0-9]* ms' | cut -d' ' -f4) ms"
done
expect_call "Delete c0" Delete '{"id":"c0"}' '^OK'

blk=$(guest_qmp query-block)
dev=$(grep -o '"hot-added [^"]*' "$T/shim.log" | grep -o 'vmshim-[0-9]*-dev[0-9]*' | head -1)
serial=$(grep -o '"hot-added [^"]*' "$T/shim.log" | grep -o 'serial [^)]*' | head -1 | cut -d' ' -f2)
if [ -n "$dev" ] && printf '%s' "$blk" | grep -q "\"qdev\":\"/machine/peripheral/$dev/" &&
	printf '%s' "$blk" | grep -q "\"file\":\"$T/disk1.img\""; then
	pass "query-block shows device $dev backed by disk1.img"
else
	fail "query-block: dev '$dev' not found with disk1.img: $blk"
fi
[ "$(vm_leftovers)" = "2 1" ] && pass "two block nodes and one device in the VM" ||
	fail "VM holds (nodes devices) $(vm_leftovers), want 2 1"
if [ -n "$serial" ] && grep -q "mount skipped: local VM (serial $serial, target /run/vmshim/c1/rootfs)" "$T/agent.log"; then
	pass "the agent got MountDisk with serial $serial and the default target"
else
	fail "agent log has no MountDisk for serial '$serial': $(grep -i mount "$T/agent.log" | tail -3)"
fi
grep -q "did not mount serial $serial: mount skipped: local VM" "$T/shim.log" &&
	pass "the shim logged the skipped mount and went on" || fail "no skipped-mount line in the shim log"
expect_call "Start c1" Start '{"id":"c1"}' '^OK'
expect_call "Wait c1" Wait '{"id":"c1"}' '"exit_status":0'
grep -qx hello-from-block "$T/c1.out" && pass "c1's output arrived" || fail "c1 output: '$(cat "$T/c1.out")'"
t0=$(date +%s%N)
delete_with_ack c1 >/dev/null
out=$(cat "$T/delete.c1")
t1=$(date +%s%N)
printf '%s' "$out" | grep -q '^OK {"exit_status":0' && pass "Delete c1 with the guest's ack: $out ($(((t1 - t0) / 1000000)) ms)" ||
	fail "Delete c1: $out"
[ "$(vm_leftovers)" = "0 0" ] && pass "nothing left in the VM after Delete (query-named-block-nodes, qom-list)" ||
	fail "VM still holds (nodes devices) $(vm_leftovers)"
guest_qmp query-block | grep -q vmshim- && fail "query-block still shows a vmshim disk" ||
	pass "query-block shows no vmshim disk"
grep -q '"removed vmshim-[0-9]*-dev[0-9]* from rp[01]"' "$T/shim.log" && pass "the shim logged the removal" ||
	fail "no removal line in the shim log"

# --- A failed CreateContainer after the hot-add rolls the disk back ---
cat >"$T/b1/config.json" <<JSON
{"ociVersion": "1.0.2", "process": {"args": ["sh", 7], "cwd": "/"}, "root": {"path": "rootfs"}}
JSON
ack_loop() {
	for i in $(seq 100); do
		guest_qmp system_reset >/dev/null 2>&1
		sleep 0.1
	done
}
ack_loop &
ACK=$!
PIDS="$PIDS $ACK"
expect_call "Create c4 whose agent CreateContainer fails after the hot-add" Create \
	"{\"id\":\"c4\",\"bundle\":\"$T/b1\",$(block_rootfs "$T/disk1.img")}" \
	'^INVALID_ARGUMENT agent CreateContainer: .*args\[1\]'
kill "$ACK" 2>/dev/null
wait "$ACK" 2>/dev/null
[ "$(vm_leftovers)" = "0 0" ] && pass "rolled back: nothing left in the VM" ||
	fail "after the failed Create the VM holds $(vm_leftovers)"
expect_call "State c4 (never created)" State '{"id":"c4"}' '^NOT_FOUND'

# --- Unplug timeout: one port, 400 ms, no guest ack ---
stop_shim
write_hp_config "$T/qmp.sock" 1 400 false 4
start_shim
make_bundle b2 'echo two'
expect_call "Create c2 (the only port)" Create \
	"{\"id\":\"c2\",\"bundle\":\"$T/b2\",$(block_rootfs "$T/disk1.img" '["ro"]')}" '^OK'
grep -q '"ro":true' <<<"$(guest_qmp query-named-block-nodes)" && pass "\"ro\" attached the image read-only" ||
	fail "ro: no read-only node"
expect_call "Start c2" Start '{"id":"c2"}' '^OK'
expect_call "Wait c2" Wait '{"id":"c2"}' '"exit_status":0'
expect_call "Delete c2 (the guest never releases the disk)" Delete '{"id":"c2"}' '^OK \{"exit_status":0'
if grep '"level":"error"' "$T/shim.log" | grep -q 'disk stays in the VM: Delete c2: remove disk of c2: vmshim-[0-9]*-dev[0-9]* on rp0 not released by the guest'; then
	pass "the shim logged the stuck device at error level"
else
	fail "no error line for the stuck device: $(grep -i 'not released' "$T/shim.log" | tail -2)"
fi
expect_call "State c2 (deleted)" State '{"id":"c2"}' '^NOT_FOUND'
make_image disk3.img
expect_call "Create c3: the only port is stuck" Create \
	"{\"id\":\"c3\",\"bundle\":\"$T/b2\",$(block_rootfs "$T/disk3.img")}" \
	'^RESOURCE_EXHAUSTED Create c3: no free hotplug port \(1 configured\)'
check_normal_container 1 "after the unplug timeout"
finish
