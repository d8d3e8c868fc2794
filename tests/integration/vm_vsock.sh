#!/bin/sh
# vm_vsock.sh: vmshim-vsock between a real QEMU (TCG) guest running Debian's kernel and the
# host, through the guest kernel's own virtio-vsock driver.
#
# One guest is booted for all rows (a TCG boot costs seconds): the image comes from
# contrib/guest/build-guest with tests/integration/vsock_peer added and run by the init in
# place of the agent. The host side is tests/integration/vsock_host. Rows:
#   64 MiB each way through one connection (echo), hashes equal
#   32 connections at once, 1 MiB each way on each
#   a guest-initiated connection to <uds>_6000, and one to a host port nobody listens on
#   SHUTDOWN of one direction while the other flows, both ways round
#   CONNECT to a closed guest port is refused (RST: closed without OK)
# and at the end QEMU quits and vmshim-vsock must exit 0 on its own, its log free of errors.
# Exits 77 only when QEMU (with vhost-user-vsock-pci) or the kernel package cannot be had.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"

VSOCKD=$B/contrib/vsock/vmshim-vsock
HOSTC=$B/tests/integration/vsock_host
PEER=$B/tests/integration/vsock_peer

need_qemu_vsock
for b in "$VSOCKD" "$HOSTC" "$PEER"; do
	[ -x "$b" ] || die "$b is not built"
done
setup

# The guest image: kernel from the cache (downloaded once), the peer as an extra program.
build_guest "$T/guest" --extra "$PEER:/bin/vsock_peer"

"$VSOCKD" --vhost-user "$T/vu.sock" --uds "$T/v.sock" --log "$T/vsock.log" &
VPID=$!
PIDS="$PIDS $VPID"
i=0
while [ ! -S "$T/vu.sock" ] && [ $i -lt 400 ]; do
	kill -0 $VPID 2>/dev/null || die "vmshim-vsock exited: $(cat "$T/vsock.log")"
	sleep 0.05
	i=$((i + 1))
done
[ -S "$T/vu.sock" ] || die "vmshim-vsock did not listen"

t0=$(date +%s%N)
"$QEMU_BIN" -accel tcg -machine q35,memory-backend=mem -m 256 -smp 1 \
	-object memory-backend-memfd,id=mem,size=256M,share=on \
	-kernel "$T/guest/vmlinux" -initrd "$T/guest/initramfs.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1 vmshim.init=/bin/vsock_peer" \
	-chardev socket,id=vu,path="$T/vu.sock" -device vhost-user-vsock-pci,chardev=vu \
	-serial file:"$T/console.log" -monitor none -display none -nodefaults -no-reboot \
	>"$T/qemu.log" 2>&1 &
QPID=$!
PIDS="$PIDS $QPID"
# Bounded wait for the peer's line on the console (a TCG boot under load can be slow).
i=0
while ! grep -q 'peer: listening' "$T/console.log" 2>/dev/null; do
	kill -0 $QPID 2>/dev/null ||
		die "QEMU exited: $(tail -n 5 "$T/qemu.log") / console: $(tail -n 5 "$T/console.log")"
	[ $i -lt 2400 ] || die "the guest did not start its peer in 120 s: $(tail -n 5 "$T/console.log")"
	sleep 0.05
	i=$((i + 1))
done
echo "boot: guest peer listening after $((($(date +%s%N) - t0) / 1000000)) ms (TCG)"

row() {
	name=$1
	shift
	if out=$(timeout 300 "$HOSTC" "$@" 2>&1); then
		pass "$name: $out"
	else
		fail "$name: $out"
	fi
}

row "64 MiB each way, one connection" echo "$T/v.sock" 5000 1 67108864
row "32 connections at once" echo "$T/v.sock" 5000 32 1048576
row "guest-initiated connection" dial "$T/v.sock" 5000 6000
row "guest connect to a closed host port" dialrefused "$T/v.sock" 5000 6001
row "host shuts its direction, the guest's flows" halfclose "$T/v.sock" 5000 4194304
if out=$(timeout 300 "$HOSTC" guestshut "$T/v.sock" 5000 4194304 2>&1); then
	want=${out#guestshut: }
	i=0
	while ! grep -q "peer: after-shutdown $want" "$T/console.log" && [ $i -lt 1200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if grep -q "peer: after-shutdown $want" "$T/console.log"; then
		pass "guest shuts its direction, the host's flows: $want"
	else
		fail "guest shuts its direction: the guest did not report $want: $(grep after-shutdown "$T/console.log")"
	fi
else
	fail "guest shuts its direction: $out"
fi
row "CONNECT to a closed guest port" refused "$T/v.sock" 4444

# QEMU goes away: the backend must notice and exit 0 by itself.
kill -TERM $QPID
wait $QPID 2>/dev/null
i=0
while kill -0 $VPID 2>/dev/null && [ $i -lt 200 ]; do
	sleep 0.05
	i=$((i + 1))
done
if kill -0 $VPID 2>/dev/null; then
	fail "vmshim-vsock still runs after QEMU exited"
else
	wait $VPID
	rc=$?
	[ $rc -eq 0 ] && pass "vmshim-vsock exited 0 after QEMU" || fail "vmshim-vsock exited $rc"
fi
if grep -q '"level":"error"' "$T/vsock.log"; then
	fail "vmshim-vsock logged errors: $(grep '"level":"error"' "$T/vsock.log" | head -n 3)"
fi
[ -e "$T/v.sock" ] && fail "vmshim-vsock left its socket behind"

[ $FAILS -eq 0 ] || {
	echo "console tail:"
	tail -n 20 "$T/console.log"
	exit 1
}
exit 0
