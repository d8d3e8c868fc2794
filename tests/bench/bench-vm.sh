#!/bin/bash
# bench-vm.sh: the figures of `make bench-vm`, one run on this machine: vmshim with
# vm.launch "qemu" (the `make guest` image, built into a temporary directory). For each
# accelerator that works here (TCG always; KVM only where vm.accel "auto" finds hardware KVM):
#   boot: `vmshim start` until it prints the address (the agent in the guest answers);
#   stdout: MB/s of 64 MiB written by dd in a container, through virtio-vsock, vmshim-vsock
#           and the shim into a host file (Start to Wait);
#   round trips: State (answered by the shim), Pids (the shim asks the guest's agent), Ping
#           straight to the agent through the hybrid vsock socket; p50/p99 in microseconds;
#   memory: VmRSS of the shim, vmshim-vsock and QEMU, and their sum, with one container up.
# Nothing here asserts a speed.
set -u
B=${top_builddir:-$PWD}
S=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
SHIM=$B/shim/vmshim
AGENT=$B/contrib/agent/vmshim-agent
BC=$B/tests/bench/bench-control
RAW=$B/tests/integration/shim_rawclient
N=${BENCH_N:-500}
MIB=${BENCH_MIB:-64}
T=$(mktemp -d /tmp/vmshim-bench-vm.XXXXXX)
PIDS=
cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

LC_ALL=C readelf -l "$AGENT" 2>/dev/null | grep -q INTERP && {
	echo "bench-vm: this build's vmshim-agent is dynamic (sanitizer build): no guest image"
	exit 0
}
"$S/contrib/guest/build-guest" --out "$T/guest" --agent "$AGENT" >"$T/build.log" 2>&1 || {
	echo "bench-vm: cannot build the guest image: $(tail -n 1 "$T/build.log")"
	exit 0
}
[ -x "$RAW" ] || make -s tests/integration/shim_rawclient >/dev/null 2>&1
mkdir -p "$T/b"
cat >"$T/b/config.json" <<JSON
{"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "dd if=/dev/zero bs=65536 count=$((MIB * 16)) 2>/dev/null"],
 "cwd": "/", "env": ["PATH=/bin"]}, "root": {"path": "rootfs"}}
JSON
mkdir -p "$T/s"
cat >"$T/s/config.json" <<JSON
{"ociVersion": "1.0.2", "process": {"args": ["sleep", "100000"], "cwd": "/", "env": ["PATH=/bin"]},
 "root": {"path": "rootfs"}}
JSON

run() {
	accel=$1
	sock=$T/$accel.sock
	cat >"$T/$accel.json" <<JSON
{"vm": {"launch": "qemu", "accel": "$accel", "kernel": "$T/guest/vmlinux",
        "initrd": "$T/guest/initramfs.cpio.gz", "boot_timeout_ms": 120000},
 "allowed_uids": [$(id -u)], "log_level": "info"}
JSON
	t0=$(date +%s%N)
	if ! "$SHIM" -socket "$sock" -config "$T/$accel.json" -log "$T/$accel.log" start >/dev/null 2>"$T/$accel.err"; then
		echo "$accel: the VM did not start: $(cat "$T/$accel.err")"
		return
	fi
	boot=$((($(date +%s%N) - t0) / 1000000))
	spid=$(cat "$T/$accel.pid")
	qpid=$(cat "$T/$accel.d/qemu.pid")
	vpid=$(cat "$T/$accel.d/vsock.pid")
	PIDS="$PIDS $spid $qpid $vpid"
	chosen=$(grep -o '"microVM: started [^"]*-accel [a-z]* ([^)]*)' "$T/$accel.log" | sed 's/.*-accel //')
	echo "== vm.accel $accel: -accel $chosen"
	echo "boot to an answering agent: $boot ms"

	"$RAW" call "$sock" Create "{\"id\":\"dd\",\"bundle\":\"$T/b\",\"stdout\":\"$T/dd.out\"}" >/dev/null
	t0=$(date +%s%N)
	"$RAW" call "$sock" Start '{"id":"dd"}' >/dev/null
	"$RAW" call "$sock" Wait '{"id":"dd"}' >/dev/null
	ms=$((($(date +%s%N) - t0) / 1000000))
	bytes=$(stat -c %s "$T/dd.out")
	echo "stdout through virtio-vsock: $((bytes / 1048576)) MiB in $ms ms = $((bytes / 1000 / (ms + 1))) MB/s"
	"$RAW" call "$sock" Delete '{"id":"dd"}' >/dev/null
	rm -f "$T/dd.out"

	"$RAW" call "$sock" Create "{\"id\":\"s\",\"bundle\":\"$T/s\"}" >/dev/null
	"$RAW" call "$sock" Start '{"id":"s"}' >/dev/null
	echo "State (shim) round trip, $N calls: $("$BC" lat "unix:$sock" State '{"id":"s"}' "$N")"
	echo "Pids (shim -> guest agent) round trip, $N calls: $("$BC" lat "unix:$sock" Pids '{"id":"s"}' "$N")"
	echo "Ping straight to the guest agent over vsock, $N calls: $("$BC" lat "uds:$T/$accel.d/v.sock:1024" Ping '{}' "$N")"
	rs=$(rss_kb "$spid") rv=$(rss_kb "$vpid") rq=$(rss_kb "$qpid")
	echo "memory (VmRSS, one container up): shim $rs kB + vmshim-vsock $rv kB + QEMU $rq kB = $((rs + rv + rq)) kB (guest RAM 256 MiB)"
	echo "  QEMU: $(grep -E '^Rss(Anon|File|Shmem)' "/proc/$qpid/status" | tr -s ' \t' ' ' | tr '\n' ' ')"
	"$RAW" call "$sock" Kill '{"id":"s","signal":9}' >/dev/null
	"$RAW" call "$sock" Wait '{"id":"s"}' >/dev/null
	"$RAW" call "$sock" Delete '{"id":"s"}' >/dev/null
	"$RAW" call "$sock" Shutdown '{"now":true}' >/dev/null
	for i in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
}

run tcg
# KVM where vm.accel "auto" finds hardware KVM; otherwise say why not.
if [ -c /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
	run kvm
else
	echo "== KVM: not measured: vm.accel \"auto\" picks TCG here ($(ls /sys/module | grep -E '^kvm' | tr '\n' ' ')loaded; /dev/kvm $( [ -c /dev/kvm ] && echo present || echo absent))"
fi
