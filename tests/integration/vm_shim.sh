#!/bin/bash
# vm_shim.sh: vmshim with vm.launch "qemu": the shim launches vmshim-vsock and QEMU (TCG) with
# the `make guest` image and drives containers in the real guest. Two guests for every row:
#   guest 1 (not confidential):
#     QEMU runs under its own seccomp filter (-sandbox on)
#     start prints the address only once the agent in the guest answers (boot time printed)
#     uname -r in a container prints the guest's kernel, not the host's
#     300,000 lines written just before exit all arrive before Wait answers
#     1 MiB through stdin -> cat -> stdout, SHA-256 equal
#     exec into a running container, a terminal sized by ResizePty (stty size), Kill, Wait
#     a block rootfs (an ext4 image made by mkfs.ext4 -d) hot-added into the running guest,
#       mounted by the agent, the container chrooted into it reads a file from it; Delete
#       unplugs it and the shim logs the guest's own DEVICE_DELETED
#     4 concurrent Creates with a block rootfs: the agent's overlap switch
#       (vmshim.test_bringup_overlap=1 on the guest's command line) sees the bring-ups overlap
#     QEMU killed under a running task: Wait answers 255, State says STOPPED, Delete and
#       Shutdown still answer, nothing is left running
#   guest 2 (vm.confidential):
#     4 concurrent Creates with a block rootfs all succeed, the overlap switch stays silent,
#       each container reads its own disk
#     the vsock backend killed under a running task: the same as QEMU's death
#     an overlay rootfs as containerd gives it (host directories): mounted by the shim's mounter
#       in the share, reached over virtio-9p, the container reads the image and its write lands
#       in the upper dir; Delete unmounts; the id reused; a refused and a malformed mount fail
#       Create and leave nothing
#     a guest container's environment: /proc, a /dev tmpfs with its nodes, /sys, its own
#       cgroup bound read-only on /sys/fs/cgroup with the spec's memory limit; an image whose
#       /proc is a symlink out of the root is refused
#   guest 3: `vmshim delete` with the shim stopped (SIGSTOP) and its pid file gone: delete
#     kills QEMU and vmshim-vsock by their pid files, unmounts the share, removes the state
#     directory and prints the DeleteResponse; the shim's SIGKILL then ends its mounter
#   guest 4: the shim SIGKILLed with a root mounted: the mounter unmounts it and exits
#   no guest:
#     QEMU that exits at once, a root port id that would smuggle QEMU options, and a guest
#       that never answers (an image without the agent):
#       start fails with one line naming the step, within vm.boot_timeout_ms, nothing left
# Exits 77 when QEMU (with vhost-user-vsock-pci) or the kernel package cannot be had, or
# when this build's agent is linked dynamically (sanitizer builds): the image has no libraries.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"

VSOCKD=$B/contrib/vsock/vmshim-vsock

need_qemu_vsock
for b in "$SHIM" "$AGENT" "$RAW" "$VSOCKD"; do
	[ -x "$b" ] || die "$b is not built"
done
need_static_agent
need_mkfs_ext4
BUSYBOX=$(command -v busybox || echo /bin/busybox)
LC_ALL=C readelf -l "$BUSYBOX" 2>/dev/null | grep -q INTERP &&
	die "$BUSYBOX is not static (apt-get install busybox-static)"
setup

build_guest "$T/guest" --agent "$AGENT"
kver=$(cat "$T/guest/kernel-version")

# A root filesystem image: static busybox as /bin/sh and /bin/cat, and a file naming the disk.
make_rootfs_image() {
	rm -rf "$T/img"
	mkdir -p "$T/img/bin" "$T/img/proc" "$T/img/dev"
	cp "$BUSYBOX" "$T/img/bin/busybox"
	for a in sh cat echo; do ln -s busybox "$T/img/bin/$a"; done
	echo "from disk $1" >"$T/img/hello"
	truncate -s 16M "$T/$1.img"
	mkfs.ext4 -q -F -d "$T/img" "$T/$1.img" >"$T/mkfs.log" 2>&1 ||
		die "mkfs.ext4: $(cat "$T/mkfs.log")"
}

# vm_config NAME CONFIDENTIAL [extra vm members]: a config in $T/NAME.json (VMQEMU, VMINITRD
# and BOOT_MS replace QEMU, the initrd and the boot timeout).
vm_config() {
	cat >"$T/$1.json" <<JSON
{"vm": {"launch": "qemu", "qemu": "${VMQEMU:-$QEMU_BIN}", "accel": "tcg",
        "kernel": "$T/guest/vmlinux", "initrd": "${VMINITRD:-$T/guest/initramfs.cpio.gz}",
        "hotplug_ports": ["rp0", "rp1", "rp2", "rp3", "rp4"], "confidential": $2,
        "boot_timeout_ms": ${BOOT_MS:-120000} ${3:-}},
 "workers": 6, "seccomp": true, "allowed_uids": [$(id -u)], "log_level": "debug"}
JSON
}

# boot NAME: `vmshim start` with $T/NAME.json; sets SOCK, SHIM_PID, STATE.
boot() {
	SOCK=$T/$1.sock
	STATE=$T/$1.d
	t0=$(date +%s%N)
	addr=$("$SHIM" -socket "$SOCK" -config "$T/$1.json" -log "$T/$1.log" start 2>"$T/$1.err") ||
		die "start $1: $(cat "$T/$1.err") / $(tail -n 3 "$T/$1.log")"
	BOOT_TOOK=$((($(date +%s%N) - t0) / 1000000))
	SHIM_PID=$(cat "$T/$1.pid")
	PIDS="$PIDS $SHIM_PID $(cat "$STATE/qemu.pid") $(cat "$STATE/vsock.pid")"
	[ "$addr" = "unix://$SOCK" ] || fail "start printed '$addr'"
	"$RAW" call "$SOCK" Connect '{}' >/dev/null 2>&1 ||
		fail "start returned before the shim answered"
	echo "boot: $1 answering after $BOOT_TOOK ms (TCG)"
}

c() { "$RAW" call "$SOCK" "$@"; }
expect() {
	out=$(c "$2" "$3" 2>&1)
	if printf '%s\n' "$out" | grep -Eq -- "$4"; then
		pass "$1: $out"
	else
		fail "$1: got '$out', want /$4/"
	fi
}

# run_ctr ID CREATE-PAYLOAD WANT WHAT: Create, Start and Wait (exit 0) for ID, then its
# stdout ($T/ID.out, newlines as spaces) must be WANT.
run_ctr() {
	expect "Create $1" Create "$2" '^OK'
	expect "Start $1" Start "{\"id\":\"$1\"}" '^OK'
	expect "Wait $1" Wait "{\"id\":\"$1\"}" '"exit_status":0'
	got=$(tr '\n' ' ' <"$T/$1.out")
	[ "$got" = "$3" ] && pass "$4: $got" || fail "$4: '$got', want '$3'"
}

# bundle NAME SCRIPT [terminal]: the process is `sh -c SCRIPT`.
bundle() {
	mkdir -p "$T/$1"
	script=$(printf '%s' "$2" | sed 's/\\/\\\\/g; s/"/\\"/g')
	cat >"$T/$1/config.json" <<JSON
{"ociVersion": "1.0.2",
 "process": {"args": ["sh", "-c", "$script"], "env": ["PATH=/bin:/sbin"], "cwd": "/",
             "user": {"uid": 0, "gid": 0}, "terminal": ${3:-false}},
 "root": {"path": "rootfs"}}
JSON
}

# dead PID...: every pid has exited, a zombie counts (its parent may be stopped) (bounded wait).
dead() {
	local p i st
	for p in "$@"; do
		i=0
		while st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1) &&
			[ -n "$st" ] && [ "$st" != Z ] && [ $i -lt 100 ]; do
			sleep 0.05
			i=$((i + 1))
		done
		[ -z "$st" ] || [ "$st" = Z ] || return 1
	done
	return 0
}

# gone PID...: every pid has ended (bounded wait).
gone() {
	for p in "$@"; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.05
			i=$((i + 1))
		done
		kill -0 "$p" 2>/dev/null && return 1
	done
	return 0
}

# shutdown_shim: Shutdown, then the shim, QEMU and the backend all end.
shutdown_shim() {
	expect "Shutdown" Shutdown '{"now":true}' '^OK'
	if gone "$SHIM_PID" $1; then
		pass "the shim and everything it launched have ended"
	else
		fail "still running after Shutdown: $(ps -o pid=,args= -p "$SHIM_PID" $1 | tr '\n' ';')"
	fi
	[ ! -e "$STATE" ] || fail "state directory $STATE left behind"
	# The daemon's stderr is its log: a sanitizer's report lands there.
	! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error' "${SOCK%.sock}.log" ||
		fail "the shim reported: $(grep -E -m 3 'Sanitizer|runtime error' "${SOCK%.sock}.log")"
}

export VMSHIM_TEST_GUEST_APPEND=vmshim.test_bringup_overlap=1
for i in 0 1 2 3 4 5 6 7 8; do make_rootfs_image "d$i"; done

# ---- guest 1 ----
vm_config g1 false
boot g1
# QEMU faces the guest: it runs under its own seccomp filter (-sandbox on).
grep -q '^Seccomp:[[:space:]]*2' "/proc/$(cat "$STATE/qemu.pid")/status" &&
	pass "QEMU runs under a seccomp filter" ||
	fail "QEMU is not confined: $(grep Seccomp "/proc/$(cat "$STATE/qemu.pid")/status")"
QPID=$(cat "$STATE/qemu.pid")
VPID=$(cat "$STATE/vsock.pid")
tr '\0' ' ' <"/proc/$QPID/cmdline" | grep -q -- "-accel tcg" || fail "QEMU does not run with -accel tcg"

bundle uname 'uname -r'
expect "Create uname" Create "{\"id\":\"uname\",\"bundle\":\"$T/uname\",\"stdout\":\"$T/uname.out\"}" '^OK'
expect "Start uname" Start '{"id":"uname"}' '^OK'
expect "Wait uname" Wait '{"id":"uname"}' '"exit_status":0'
[ "$(cat "$T/uname.out")" = "$kver" ] &&
	pass "uname -r in the container: $kver (host: $(uname -r))" ||
	fail "uname -r printed '$(cat "$T/uname.out")', want $kver"
expect "Delete uname" Delete '{"id":"uname"}' '^OK'

bundle lines 'seq 1 300000'
t0=$(date +%s%N)
expect "Create lines" Create "{\"id\":\"lines\",\"bundle\":\"$T/lines\",\"stdout\":\"$T/lines.out\"}" '^OK'
expect "Start lines" Start '{"id":"lines"}' '^OK'
expect "Wait lines" Wait '{"id":"lines"}' '"exit_status":0'
n=$(wc -l <"$T/lines.out")
[ "$n" = 300000 ] && [ "$(tail -n 1 "$T/lines.out")" = 300000 ] &&
	pass "300,000 lines before exit all arrived before Wait ($((($(date +%s%N) - t0) / 1000000)) ms)" ||
	fail "got $n lines, last '$(tail -n 1 "$T/lines.out")'"
expect "Delete lines" Delete '{"id":"lines"}' '^OK'

head -c 1048576 /dev/urandom >"$T/stdin.bin"
bundle cat 'exec cat'
mkfifo "$T/cat.in"
expect "Create cat" Create "{\"id\":\"cat\",\"bundle\":\"$T/cat\",\"stdin\":\"$T/cat.in\",\"stdout\":\"$T/cat.out\"}" '^OK'
cat "$T/stdin.bin" >"$T/cat.in" &
PIDS="$PIDS $!"
expect "Start cat" Start '{"id":"cat"}' '^OK'
expect "Wait cat" Wait '{"id":"cat"}' '"exit_status":0'
want=$(sha256sum <"$T/stdin.bin")
got=$(sha256sum <"$T/cat.out")
[ "$got" = "$want" ] && pass "1 MiB stdin -> cat in the guest -> stdout: SHA-256 equal" ||
	fail "1 MiB through cat: SHA-256 $got, want $want"
expect "Delete cat" Delete '{"id":"cat"}' '^OK'

bundle run 'echo running; exec sleep 100000'
expect "Create run" Create "{\"id\":\"run\",\"bundle\":\"$T/run\",\"stdout\":\"$T/run.out\"}" '^OK'
expect "Start run" Start '{"id":"run"}' '^OK'
expect "Exec into run" Exec "{\"id\":\"run\",\"exec_id\":\"e1\",\"stdout\":\"$T/e1.out\",\"spec\":{\"args\":[\"sh\",\"-c\",\"echo exec-ok; hostname\"],\"env\":[\"PATH=/bin\"],\"cwd\":\"/\"}}" '^OK'
expect "Start the exec" Start '{"id":"run","exec_id":"e1"}' '^OK'
expect "Wait the exec" Wait '{"id":"run","exec_id":"e1"}' '"exit_status":0'
[ "$(tr '\n' ' ' <"$T/e1.out")" = "exec-ok vmshim-guest " ] && pass "the exec ran in the guest: $(tr '\n' ' ' <"$T/e1.out")" ||
	fail "exec output '$(cat "$T/e1.out")'"
expect "Delete the exec" Delete '{"id":"run","exec_id":"e1"}' '^OK'
mkfifo "$T/t.in" "$T/t.out"
cat "$T/t.out" >"$T/t.captured" &
PIDS="$PIDS $!"
expect "Exec with a terminal" Exec "{\"id\":\"run\",\"exec_id\":\"t1\",\"terminal\":true,\"stdin\":\"$T/t.in\",\"stdout\":\"$T/t.out\",\"spec\":{\"args\":[\"sh\",\"-c\",\"read x; stty size\"],\"env\":[\"PATH=/bin\"],\"cwd\":\"/\",\"terminal\":true}}" '^OK'
exec 3>"$T/t.in"
expect "Start the terminal" Start '{"id":"run","exec_id":"t1"}' '^OK'
expect "ResizePty 91 x 29" ResizePty '{"id":"run","exec_id":"t1","width":91,"height":29}' '^OK'
echo go >&3
expect "Wait the terminal" Wait '{"id":"run","exec_id":"t1"}' '"exit_status":0'
exec 3>&-
i=0
while ! grep -q '29 91' "$T/t.captured" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
grep -q '29 91' "$T/t.captured" && pass "stty size in the guest's terminal: 29 91" ||
	fail "stty size: '$(cat -v "$T/t.captured")'"
expect "Delete the terminal" Delete '{"id":"run","exec_id":"t1"}' '^OK'
expect "Kill run" Kill '{"id":"run","signal":9}' '^OK'
expect "Wait run" Wait '{"id":"run"}' '"exit_status":137'
expect "Delete run" Delete '{"id":"run"}' '^OK'

# Block rootfs, hot-added into the running guest; the container runs chrooted in it.
bundle blk 'cat /hello; test ! -e /sbin/vmshim-agent && echo chrooted'
run_ctr blk "{\"id\":\"blk\",\"bundle\":\"$T/blk\",\"stdout\":\"$T/blk.out\",\"rootfs\":[{\"type\":\"block\",\"source\":\"$T/d0.img\",\"options\":[\"fstype=ext4\"]}]}" \
	"from disk d0 chrooted " "a block rootfs: the container read its hot-added, mounted root"
expect "Delete blk (unplug)" Delete '{"id":"blk"}' '^OK'
grep -q '"removed [^"]* from rp[0-9]".*"id":"blk"' "$T/g1.log" &&
	! grep -q 'disk stays in the VM' "$T/g1.log" &&
	pass "the guest released the disk itself: DEVICE_DELETED, no reset" ||
	fail "no unplug of blk's disk in the log: $(grep '"blk"' "$T/g1.log" | tail -n 3)"

# A root filesystem as containerd hands it over: an overlay of host directories. The shim's
# mounter mounts it on the host in the share, the guest reaches it over virtio-9p, and the
# container runs in it: it reads the image's file, and what it writes lands in the upper dir.
make_overlay() {
	mkdir -p "$T/$1.lower/bin" "$T/$1.upper" "$T/$1.work"
	cp "$BUSYBOX" "$T/$1.lower/bin/busybox"
	for a in sh cat echo uname grep; do ln -sf busybox "$T/$1.lower/bin/$a"; done
	echo "from the image $1" >"$T/$1.lower/hello"
	OVERLAY="[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":[\"lowerdir=$T/$1.lower\",\"upperdir=$T/$1.upper\",\"workdir=$T/$1.work\"]}]"
}
make_overlay ovl
bundle ovl 'cat /hello; uname -r; echo written-in-the-guest >/new'
expect "Create with an overlay rootfs" Create "{\"id\":\"ovl\",\"bundle\":\"$T/ovl\",\"stdout\":\"$T/ovl.out\",\"rootfs\":$OVERLAY}" '^OK'
grep -q " $STATE/share/ovl overlay " /proc/mounts &&
	pass "the overlay is mounted on the host in the share" ||
	fail "no overlay on $STATE/share/ovl: $(grep "$STATE" /proc/mounts)"
expect "Start ovl" Start '{"id":"ovl"}' '^OK'
expect "Wait ovl" Wait '{"id":"ovl"}' '"exit_status":0'
[ "$(tr '\n' ' ' <"$T/ovl.out")" = "from the image ovl $kver " ] &&
	pass "the guest's container ran in the overlay: $(tr '\n' ' ' <"$T/ovl.out")" ||
	fail "overlay rootfs output '$(cat "$T/ovl.out")' (want the image's file and $kver)"
[ "$(cat "$T/ovl.upper/new" 2>&1)" = written-in-the-guest ] &&
	pass "the guest's write landed in the host's upper dir" ||
	fail "upper dir after the guest wrote: $(ls "$T/ovl.upper" 2>&1)"
expect "Delete ovl" Delete '{"id":"ovl"}' '^OK'
! grep -q "$STATE/share" /proc/mounts && [ ! -e "$STATE/share/ovl" ] &&
	pass "Delete unmounted the overlay and removed its mount point" ||
	fail "after Delete: $(grep "$STATE/share" /proc/mounts) $(ls "$STATE/share")"
# The same id again works (nothing stale in the share or the guest's 9p view).
make_overlay ovl2
bundle ovl2 'cat /hello'
expect "Create ovl (again, another image)" Create "{\"id\":\"ovl\",\"bundle\":\"$T/ovl2\",\"stdout\":\"$T/ovl2.out\",\"rootfs\":$OVERLAY}" '^OK'
expect "Start ovl again" Start '{"id":"ovl"}' '^OK'
expect "Wait ovl again" Wait '{"id":"ovl"}' '"exit_status":0'
[ "$(cat "$T/ovl2.out")" = "from the image ovl2" ] && pass "the id reused: the new image's root" ||
	fail "reused id output '$(cat "$T/ovl2.out")'"
expect "Delete ovl again" Delete '{"id":"ovl"}' '^OK'
# A mount the kernel refuses fails the Create and leaves nothing.
expect "Create with a bad overlay" Create "{\"id\":\"bad\",\"bundle\":\"$T/ovl\",\"rootfs\":[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":[\"lowerdir=$T/nonexistent\"]}]}" '^INTERNAL.*root filesystem.*mount \[0\] \(overlay overlay\)'
[ ! -e "$STATE/share/bad" ] && pass "the failed mount left no mount point" || fail "$STATE/share/bad left"
expect "Create with a malformed rootfs" Create "{\"id\":\"bad\",\"bundle\":\"$T/ovl\",\"rootfs\":[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":[7]}]}" '^INVALID_ARGUMENT.*options\[0\]: expected a string'

# A guest container's environment: the spec's kernel filesystems in its root and a cgroup of
# its own with the spec's memory limit, seen from inside.
bundle_env() {
	mkdir -p "$T/$1"
	cat >"$T/$1/config.json" <<JSON
{"ociVersion": "1.0.2",
 "process": {"args": ["sh", "-c", "$2"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
 "root": {"path": "rootfs"},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/etc/hosts", "type": "bind", "source": "/nonexistent/on/the/host", "options": ["rbind", "rprivate", "rw"]}],
 "linux": {"resources": {"memory": {"limit": 33554432}}}}
JSON
}
make_overlay env
bundle_env env 'cat /sys/fs/cgroup/memory.max; [ -c /dev/null ] && echo x >/dev/null && echo devnull-ok; grep -q ^Name: /proc/self/status && echo proc-ok; grep -q /vmshim/env /proc/self/cgroup && echo cgroup-ok; echo 67108864 >/sys/fs/cgroup/memory.max 2>/dev/null || echo cgroup-ro'
run_ctr env "{\"id\":\"env\",\"bundle\":\"$T/env\",\"stdout\":\"$T/env.out\",\"rootfs\":$OVERLAY}" \
	"33554432 devnull-ok proc-ok cgroup-ok cgroup-ro " \
	"spec mounts and a memory limit: the container's /proc, /dev, its cgroup and its limit"
expect "Delete env" Delete '{"id":"env"}' '^OK'
! grep -q "$STATE/share" /proc/mounts && pass "Delete env: nothing mounted in the share" ||
	fail "after Delete env: $(grep "$STATE/share" /proc/mounts)"
# An image whose /proc is a symlink out of its root: the mount is refused, nothing is left.
make_overlay evil
ln -s /etc "$T/evil.lower/proc"
bundle_env evil 'echo should-not-run'
expect "Create with /proc a symlink in the image" Create "{\"id\":\"evil\",\"bundle\":\"$T/evil\",\"rootfs\":$OVERLAY}" '^INVALID_ARGUMENT.*mount destination /proc in the root'
[ ! -e "$STATE/share/evil" ] && pass "the refused Create left nothing in the share" ||
	fail "$STATE/share/evil left"

# A task that keeps running, for the fault below.
bundle victim 'echo up; exec sleep 100000'
expect "Create victim" Create "{\"id\":\"victim\",\"bundle\":\"$T/victim\",\"stdout\":\"$T/victim.out\"}" '^OK'
expect "Start victim" Start '{"id":"victim"}' '^OK'

# Four concurrent block Creates, not confidential: the bring-ups overlap in the guest.
bg=""
for i in 1 2 3 4; do
	bundle "o$i" 'cat /hello'
	"$RAW" call "$SOCK" Create "{\"id\":\"o$i\",\"bundle\":\"$T/o$i\",\"rootfs\":[{\"type\":\"block\",\"source\":\"$T/d$i.img\",\"options\":[\"fstype=ext4\"]}]}" >"$T/o$i.create" 2>&1 &
	bg="$bg $!"
done
PIDS="$PIDS $bg"
for p in $bg; do wait "$p"; done
grep -q 'bring-up overlap detected' "$STATE/console.log" &&
	pass "not confidential: the agent saw the bring-ups overlap ($(cat "$T"/o?.create | cut -c1-12 | tr '\n' ' '))" ||
	fail "not confidential: no overlap seen in the guest ($(cat "$T"/o?.create | tr '\n' ' '))"

# QEMU killed under the running task.
c Wait '{"id":"victim"}' >"$T/victim.wait" 2>&1 &
WPID=$!
PIDS="$PIDS $WPID"
kill -9 "$QPID"
wait_job "$WPID" 30 || fail "Wait did not answer after QEMU died"
grep -q '"exit_status":255' "$T/victim.wait" && pass "QEMU killed: Wait answered $(cat "$T/victim.wait")" ||
	fail "QEMU killed: Wait answered '$(cat "$T/victim.wait")'"
expect "State after the VM died" State '{"id":"victim"}' '"exit_status":255.*"status":"STOPPED"'
expect "Delete after the VM died" Delete '{"id":"victim"}' '"exit_status":255'
gone "$VPID" && pass "the backend ended with QEMU" || fail "vmshim-vsock still runs after QEMU died"
shutdown_shim ""

# ---- guest 2: confidential ----
vm_config g2 true
boot g2
QPID=$(cat "$STATE/qemu.pid")
VPID=$(cat "$STATE/vsock.pid")
bundle victim2 'echo up; exec sleep 100000'
expect "Create victim2" Create "{\"id\":\"victim2\",\"bundle\":\"$T/victim2\"}" '^OK'
expect "Start victim2" Start '{"id":"victim2"}' '^OK'
bg=""
for i in 5 6 7 8; do
	bundle "k$i" 'cat /hello'
	"$RAW" call "$SOCK" Create "{\"id\":\"k$i\",\"bundle\":\"$T/k$i\",\"stdout\":\"$T/k$i.out\",\"rootfs\":[{\"type\":\"block\",\"source\":\"$T/d$i.img\",\"options\":[\"fstype=ext4\"]}]}" >"$T/k$i.create" 2>&1 &
	bg="$bg $!"
done
PIDS="$PIDS $bg"
for p in $bg; do wait "$p"; done
oks=$(cat "$T"/k?.create | grep -c '^OK')
[ "$oks" = 4 ] && ! grep -q 'bring-up overlap detected' "$STATE/console.log" &&
	pass "confidential: 4 concurrent block Creates succeeded, the overlap switch stayed silent" ||
	fail "confidential: $oks of 4 Creates OK ($(cat "$T"/k?.create | tr '\n' ' ')), overlap: $(grep -c 'overlap detected' "$STATE/console.log")"
for i in 5 6 7 8; do
	c Start "{\"id\":\"k$i\"}" >/dev/null
	c Wait "{\"id\":\"k$i\"}" >/dev/null
	[ "$(cat "$T/k$i.out")" = "from disk d$i" ] || fail "k$i read '$(cat "$T/k$i.out")'"
done
pass "each container read its own disk"
c Wait '{"id":"victim2"}' >"$T/victim2.wait" 2>&1 &
WPID=$!
PIDS="$PIDS $WPID"
kill -9 "$VPID"
wait_job "$WPID" 30 || fail "Wait did not answer after the backend died"
grep -q '"exit_status":255' "$T/victim2.wait" &&
	pass "backend killed: Wait answered $(cat "$T/victim2.wait")" ||
	fail "backend killed: Wait answered '$(cat "$T/victim2.wait")'"
expect "State after the backend died" State '{"id":"victim2"}' '"status":"STOPPED"'
gone "$QPID" && pass "QEMU was stopped with its backend gone" || fail "QEMU still runs without its backend"
for i in 5 6 7 8; do c Delete "{\"id\":\"k$i\"}" >/dev/null || fail "Delete k$i"; done
expect "Delete victim2" Delete '{"id":"victim2"}' '^OK'
shutdown_shim ""

# ---- guest 3: `vmshim delete` after its shim stopped answering ----
# The shim is stopped, not killed, so the parent-death signal QEMU and the backend asked for
# cannot fire; its pid file is removed, so delete has no shim to kill (killing it would fire
# that signal). QEMU and vmshim-vsock can then only end by delete's own cleanup.
vm_config g6 false
boot g6
make_overlay ovl6
bundle ovl6 'exec sleep 100000'
expect "Create ovl6 (overlay)" Create "{\"id\":\"ovl6\",\"bundle\":\"$T/ovl6\",\"rootfs\":$OVERLAY}" '^OK'
expect "Start ovl6" Start '{"id":"ovl6"}' '^OK'
MOUNTER=$(pgrep -P "$SHIM_PID" -x vmshim-mounter)
QPID=$(cat "$STATE/qemu.pid")
VPID=$(cat "$STATE/vsock.pid")
kill -STOP "$SHIM_PID"
rm -f "$T/g6.pid"
hex=$("$SHIM" -socket "$SOCK" delete 2>"$T/g6.delete.err" | od -An -tx1 | tr -d ' \n')
case $hex in
1089011a??08*) pass "delete of a stopped shim's group: protobuf DeleteResponse ($hex)" ;;
*) fail "delete of a stopped shim's group: '$hex' ($(cat "$T/g6.delete.err"))" ;;
esac
if dead "$QPID" "$VPID"; then
	pass "delete killed the stopped shim's QEMU ($QPID) and vmshim-vsock ($VPID): $(tr '\n' ' ' <"$T/g6.delete.err")"
else
	fail "still running after delete: $(ps -o pid=,stat=,args= -p "$QPID" -p "$VPID" | tr '\n' ';')"
fi
[ ! -e "$STATE" ] && [ ! -e "$SOCK" ] && ! grep -q "$STATE" /proc/mounts &&
	pass "delete unmounted the share and removed the state directory and the socket" ||
	fail "delete left $(ls -d "$STATE" "$SOCK" 2>/dev/null | tr '\n' ' ') $(grep "$STATE" /proc/mounts)"
kill -0 "$SHIM_PID" 2>/dev/null || fail "the stopped shim $SHIM_PID was gone before it was killed"
kill -KILL "$SHIM_PID"
[ -n "$MOUNTER" ] && gone "$SHIM_PID" "$QPID" "$VPID" "$MOUNTER" &&
	pass "the shim's SIGKILL ended its mounter ($MOUNTER) too" ||
	fail "the shim or its children outlived SIGKILL (mounter '$MOUNTER')"

# A shim SIGKILLed with a container's root mounted: its mounter unmounts it and exits.
vm_config g7 false
boot g7
make_overlay ovl7
bundle ovl7 'exec sleep 100000'
expect "Create ovl7 (overlay)" Create "{\"id\":\"ovl7\",\"bundle\":\"$T/ovl7\",\"rootfs\":$OVERLAY}" '^OK'
MOUNTER=$(pgrep -P "$SHIM_PID" -x vmshim-mounter)
grep -q " $STATE/share/ovl7 " /proc/mounts || fail "ovl7 is not mounted in the share"
kill -KILL "$SHIM_PID"
if [ -n "$MOUNTER" ] && gone "$MOUNTER" "$(cat "$STATE/qemu.pid")" && ! grep -q " $STATE/share/ovl7 " /proc/mounts; then
	pass "a SIGKILLed shim's mounter unmounted the share and exited"
else
	fail "after the shim's SIGKILL: mounter '$MOUNTER', mounts: $(grep "$STATE" /proc/mounts)"
fi
"$SHIM" -socket "$SOCK" delete >/dev/null 2>"$T/g7.delete.err"
[ ! -e "$STATE" ] && pass "delete after a SIGKILLed shim removed its state directory" ||
	fail "delete left $(find "$STATE" | head -5 | tr '\n' ' ') ($(cat "$T/g7.delete.err"))"

# ---- boot failures ----
VMQEMU=/bin/false vm_config g3 false
if out=$("$SHIM" -socket "$T/g3.sock" -config "$T/g3.json" -log "$T/g3.log" start 2>&1); then
	fail "start with a QEMU that exits succeeded: $out"
else
	[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && printf '%s' "$out" | grep -q 'QEMU exited with status 1' &&
		pass "QEMU exiting at once: $out" || fail "QEMU exiting at once: '$out'"
fi
sed 's/"rp4"/"rp4,bus=x"/' "$T/g3.json" >"$T/g5.json"
sed -i 's|"/bin/false"|"'"$QEMU_BIN"'"|' "$T/g5.json"
out=$("$SHIM" -socket "$T/g5.sock" -config "$T/g5.json" -log "$T/g5.log" start 2>&1) &&
	fail "start with a root port id QEMU would parse as options succeeded" ||
	{ printf '%s' "$out" | grep -q 'vm.hotplug_ports\[4\] "rp4,bus=x" is not a QEMU id' &&
		pass "a root port id carrying QEMU options: $out" || fail "bad root port id: '$out'"; }
build_guest "$T/noagent"
BOOT_MS=8000 VMINITRD=$T/noagent/initramfs.cpio.gz vm_config g4 false
t0=$(date +%s%N)
if out=$("$SHIM" -socket "$T/g4.sock" -config "$T/g4.json" -log "$T/g4.log" start 2>&1); then
	fail "start with a guest that never answers succeeded: $out"
else
	ms=$((($(date +%s%N) - t0) / 1000000))
	# The console's tail is in the line (what it holds depends on how far the guest got).
	[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] &&
		printf '%s' "$out" | grep -q 'did not answer within vm.boot_timeout_ms (8000 ms)' &&
		printf '%s' "$out" | grep -q '; console: ' &&
		pass "a guest that never answers: start failed after $ms ms: $out" ||
		fail "a guest that never answers: '$out'"
fi
left=$(pgrep -f "$T/g[345].d" | tr '\n' ' ')
[ -z "$left" ] && [ ! -e "$T/g4.d" ] && [ ! -e "$T/g5.d" ] && pass "nothing left running after the failed boots" ||
	fail "left after failed boots: $left"
SHIM_PID=
finish
