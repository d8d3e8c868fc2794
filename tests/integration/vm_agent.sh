#!/bin/sh
# vm_agent.sh: vmshim-agent in a real guest: the image of `make guest` (Debian's kernel,
# busybox, the static agent as the init's service) booted by QEMU under TCG, reached through
# vmshim-vsock's hybrid socket. One guest for all rows:
#   the agent answers Ping over the guest's virtio-vsock
#   a process runs in the guest (uname -r prints the guest's kernel, not the host's)
#   a disk hot-added through QMP into the running guest is found by its serial (no udev in
#   the image: sysfs), mounted by MountDisk, and a process reads a file from it
#   UnmountDisk, then device_del completes because the guest itself releases the device
#     (no system_reset)
# Exits 77 when QEMU or the kernel package cannot be had, or when this build's agent is not
# statically linked (sanitizer builds): the image has no libraries.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"

VSOCKD=$B/contrib/vsock/vmshim-vsock
ACLIENT=$B/tests/integration/agent_client
QMPCMD=$B/tests/integration/qmp_cmd

need_qemu_vsock
for b in "$VSOCKD" "$ACLIENT" "$QMPCMD" "$AGENT"; do
	[ -x "$b" ] || die "$b is not built"
done
need_static_agent
need_mkfs_ext4
setup

build_guest "$T/guest" --agent "$AGENT"
kver=$(cat "$T/guest/kernel-version")

# The disk to hot-add: ext4 holding one file.
mkdir -p "$T/disk"
echo "from the hot-added disk" >"$T/disk/hello"
truncate -s 16M "$T/disk.img"
mkfs.ext4 -q -F -d "$T/disk" "$T/disk.img" >"$T/mkfs.log" 2>&1 || die "mkfs.ext4: $(cat "$T/mkfs.log")"

"$VSOCKD" --vhost-user "$T/vu.sock" --uds "$T/v.sock" --log "$T/vsock.log" &
VPID=$!
PIDS="$PIDS $VPID"
i=0
while [ ! -S "$T/vu.sock" ] && [ $i -lt 400 ]; do
	kill -0 $VPID 2>/dev/null || die "vmshim-vsock exited: $(cat "$T/vsock.log")"
	sleep 0.05
	i=$((i + 1))
done

t0=$(date +%s%N)
"$QEMU_BIN" -accel tcg -machine q35,memory-backend=mem -m 256 -smp 1 \
	-object memory-backend-memfd,id=mem,size=256M,share=on \
	-kernel "$T/guest/vmlinux" -initrd "$T/guest/initramfs.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1" \
	-chardev socket,id=vu,path="$T/vu.sock" -device vhost-user-vsock-pci,chardev=vu \
	-device pcie-root-port,id=rp0,chassis=1 \
	-qmp "unix:$T/qmp.sock,server=on,wait=off" \
	-serial file:"$T/console.log" -monitor none -display none -nodefaults -no-reboot \
	>"$T/qemu.log" 2>&1 &
QPID=$!
PIDS="$PIDS $QPID"

# Bounded wait until the agent answers through the guest's vsock.
i=0
until out=$("$ACLIENT" ping "$T/v.sock" 2>&1); do
	kill -0 $QPID 2>/dev/null ||
		die "QEMU exited: $(tail -n 5 "$T/qemu.log") / console: $(tail -n 5 "$T/console.log")"
	[ $i -lt 240 ] || die "the agent did not answer in 120 s: $(tail -n 5 "$T/console.log")"
	sleep 0.5
	i=$((i + 1))
done
echo "boot: agent answering after $((($(date +%s%N) - t0) / 1000000)) ms (TCG)"
case $out in
*'"runner":"process"'*) pass "Ping through the guest's virtio-vsock: $out" ;;
*) fail "Ping answered $out" ;;
esac

if "$ACLIENT" run "$T/v.sock" --id u1 --stdout "$T/uname.out" -- /bin/uname -r >"$T/run.log" 2>&1 &&
	[ "$(cat "$T/uname.out")" = "$kver" ]; then
	pass "uname -r in the guest: $kver (host: $(uname -r))"
else
	fail "uname -r in the guest: $(cat "$T/uname.out" 2>/dev/null) / $(cat "$T/run.log")"
fi

# Hot-add into the running guest, then MountDisk finds it by serial.
"$QMPCMD" "$T/qmp.sock" blockdev-add \
	"{\"node-name\":\"d0\",\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/disk.img\"}}" \
	>/dev/null || die "blockdev-add failed"
"$QMPCMD" "$T/qmp.sock" device_add \
	'{"driver":"virtio-blk-pci","id":"vd0","drive":"d0","bus":"rp0","serial":"vmshimtest"}' \
	>/dev/null || die "device_add failed"
out=$("$ACLIENT" call "$T/v.sock" MountDisk \
	'{"id":"c1","serial":"vmshimtest","target":"/mnt/c1","fstype":"ext4"}' 2>&1)
# agent_client call prints the answer with its keys sorted.
case $out in
'OK {"message":"","mounted":true,"source":"/dev/vd'*) pass "MountDisk of the hot-added disk: $out" ;;
*) fail "MountDisk: $out" ;;
esac
if "$ACLIENT" run "$T/v.sock" --id r1 --stdout "$T/cat.out" -- /bin/cat /mnt/c1/hello \
	>"$T/run2.log" 2>&1 && [ "$(cat "$T/cat.out")" = "from the hot-added disk" ]; then
	pass "a guest process reads the file from the mounted disk"
else
	fail "reading the disk: $(cat "$T/cat.out" 2>/dev/null) / $(cat "$T/run2.log")"
fi
out=$("$ACLIENT" call "$T/v.sock" MountDisk \
	'{"id":"c2","serial":"nosuchdisk","target":"/mnt/c2"}' 2>&1)
case $out in
NOT_FOUND*) pass "MountDisk of a serial no disk has: $out" ;;
*) fail "MountDisk of a missing serial: $out" ;;
esac

out=$("$ACLIENT" call "$T/v.sock" UnmountDisk '{"id":"c1","target":"/mnt/c1"}' 2>&1)
[ "$out" = "OK {}" ] && pass "UnmountDisk" || fail "UnmountDisk: $out"
"$QMPCMD" "$T/qmp.sock" device_del '{"id":"vd0"}' >/dev/null || fail "device_del failed"
# The guest's PCIe hotplug driver releases the device (after its 5 s button delay).
i=0
while "$QMPCMD" "$T/qmp.sock" qom-list '{"path":"/machine/peripheral"}' 2>/dev/null |
	grep -q '"name":"vd0"'; do
	[ $i -lt 600 ] || break
	sleep 0.1
	i=$((i + 1))
done
if "$QMPCMD" "$T/qmp.sock" qom-list '{"path":"/machine/peripheral"}' 2>/dev/null |
	grep -q '"name":"vd0"'; then
	fail "the guest did not release the unplugged disk in 60 s"
else
	pass "device_del completed by the guest itself after $((i / 10)).$((i % 10)) s"
fi

kill -TERM $QPID
wait $QPID 2>/dev/null
[ $FAILS -eq 0 ] || {
	echo "console tail:"
	tail -n 20 "$T/console.log"
	exit 1
}
exit 0
