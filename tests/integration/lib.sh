# lib.sh: shared helpers of vmshim's integration tests (sourced by tests/integration/shim_*.sh).
#
# Each test gets a private runtime directory ($T, under mktemp -d), starts the embedded local VM
# (`vmshim-agent --listen-uds $T/vm.sock`) and `vmshim serve` on $T/shim.sock with a config in
# $T/config.json, and a trap that kills everything it started and removes $T. Binaries are
# found in $top_builddir (set by `make check`), or $VMSHIM_BUILDDIR, or the current directory.
# A test that cannot run here exits 77 and says why.

set -u

: "${top_builddir:=${VMSHIM_BUILDDIR:-$PWD}}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
B=$top_builddir
SHIM=${VMSHIM:-$B/shim/vmshim}
AGENT=${VMSHIM_AGENT:-$B/contrib/agent/vmshim-agent}
CTL=${VMSHIMCTL:-$B/shim/ctl/vmshimctl}
RAW=$B/tests/integration/shim_rawclient
LOAD=$B/tests/integration/shim_load

T=
PIDS=
AGENT_PIDS=
FAILS=0

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok   $*"; }
die() { echo "FAIL: $*"; exit 1; }

need_bins() {
	for b in "$SHIM" "$AGENT" "$RAW" "$@"; do
		[ -x "$b" ] || skip "$b is not built"
	done
}

# Every descendant of a pid (the local VM's container processes), deepest last.
descendants() {
	for c in $(pgrep -P "$1"); do
		echo "$c"
		descendants "$c"
	done
}

cleanup() {
	# The local VM's processes die with it, as a real VM's would.
	for a in $AGENT_PIDS; do
		PIDS="$PIDS $(descendants "$a" | tr '\n' ' ')"
	done
	for p in $PIDS; do
		kill -9 "$p" 2>/dev/null
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null
	done
	if [ -n "$T" ] && [ "${KEEP:-0}" != 1 ]; then
		rm -rf "$T"
	fi
}

setup() {
	T=$(mktemp -d /tmp/vmshim-it.XXXXXX) || die "mktemp"
	chmod 0755 "$T"
	trap cleanup EXIT
	trap 'exit 1' INT TERM
}

# Poll (bounded) until a Unix socket accepts.
wait_socket() {
	i=0
	while [ $i -lt 200 ]; do
		if [ -S "$1" ] && "$RAW" call "$1" Connect '{}' >/dev/null 2>&1; then
			return 0
		fi
		[ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && return 1
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

wait_path() {
	i=0
	while [ $i -lt 200 ]; do
		[ -S "$1" ] && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

start_agent() {
	rm -f "$T/vm.sock"
	# AGENT_OPTS: extra vmshim-agent options.
	"$AGENT" --listen-uds "$T/vm.sock" ${AGENT_OPTS:-} >>"$T/agent.log" 2>&1 &
	AGENT_PID=$!
	PIDS="$PIDS $AGENT_PID"
	AGENT_PIDS="$AGENT_PIDS $AGENT_PID"
	wait_path "$T/vm.sock" || die "the agent did not listen (see $T/agent.log)"
}

stop_agent() {
	kill -9 "$AGENT_PID" $(descendants "$AGENT_PID") 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
}

# write_config [extra top-level JSON members, e.g. '"workers": 2,']
write_config() {
	cat >"$T/config.json" <<JSON
{
  ${1:-}
  "vm": {"vsock": "uds:$T/vm.sock", "connect_timeout_ms": ${CONNECT_TIMEOUT_MS:-2000}},
  "seccomp": ${SECCOMP:-true},
  "allowed_uids": [$(id -u)],
  "log_level": "debug"
}
JSON
}

start_shim() {
	[ -f "$T/config.json" ] || write_config
	# VMSHIM_WRAPPER (e.g. "valgrind --leak-check=full") prefixes the shim's command line.
	${VMSHIM_WRAPPER:-} "$SHIM" serve -socket "$T/shim.sock" -config "$T/config.json" -log "$T/shim.log" 2>>"$T/shim.stderr" &
	SHIM_PID=$!
	PIDS="$PIDS $SHIM_PID"
	wait_socket "$T/shim.sock" "$SHIM_PID" || die "the shim did not come up (see $T/shim.log)"
	# wait_socket's probe connection may still be open in the shim: a descriptor count taken
	# now would be one too high.
	wait_clients_closed
}

# A bundle whose init process runs `sh -c SCRIPT`.
make_bundle() {
	mkdir -p "$T/$1/rootfs"
	script=$(printf '%s' "$2" | sed 's/\\/\\\\/g; s/"/\\"/g')
	cat >"$T/$1/config.json" <<JSON
{"ociVersion": "1.0.2",
 "process": {"args": ["sh", "-c", "$script"], "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
             "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": false},
 "root": {"path": "rootfs"}}
JSON
}

# call METHOD JSON: prints "OK {payload}" or "CODE message".
call() {
	"$RAW" call "$T/shim.sock" "$1" "$2"
}

# expect_call WHAT METHOD JSON PATTERN: the answer must match the grep -E pattern.
expect_call() {
	out=$(call "$2" "$3" 2>&1)
	if printf '%s\n' "$out" | grep -Eq -- "$4"; then
		pass "$1: $out"
	else
		fail "$1: got '$out', want /$4/"
	fi
}

# wait_job PID SECS: wait (bounded) for a background job; 1 (after killing it) if it still
# runs after SECS seconds, else its exit status.
wait_job() {
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt $(($2 * 20)) ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		kill -9 "$1" 2>/dev/null
		return 1
	fi
	wait "$1"
}

# Sanitizer runtimes (ASan's quarantine, TSan's shadow) make RSS meaningless and valgrind
# impossible: tests that measure memory or run valgrind ask this first.
sanitized() {
	grep -Eq '__asan_init|__tsan_init' "$SHIM"
}

open_fds() {
	ls "/proc/$1/fd" 2>/dev/null | wc -l
}

# Bounded wait until the shim has closed every client connection it accepted (each "new
# connection" line of its debug log has its "connection closed"): a client that just exited
# may still have its socket open in the shim, which would skew a descriptor count.
wait_clients_closed() {
	i=0
	while [ "$(grep -c '"new connection fd' "$T/shim.log")" != \
		"$(grep -c '"connection closed (' "$T/shim.log")" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}

# Stop the shim with SIGTERM (the orderly shutdown path), bounded; sanitizer reports show up
# in $T/shim.stderr and fail the test.
stop_shim() {
	[ -n "${SHIM_PID:-}" ] || return 0
	if kill -TERM "$SHIM_PID" 2>/dev/null; then
		i=0
		while [ $i -lt 100 ] && kill -0 "$SHIM_PID" 2>/dev/null; do
			sleep 0.05
			i=$((i + 1))
		done
		kill -0 "$SHIM_PID" 2>/dev/null && fail "the shim did not exit on SIGTERM"
	fi
	rc=0
	wait "$SHIM_PID" 2>/dev/null || rc=$?
	# An orderly SIGTERM shutdown exits 0; a sanitizer that halted it does not.
	[ "$rc" -eq 0 ] || fail "the shim exited $rc after SIGTERM"
	if [ -s "$T/shim.stderr" ] &&
		grep -Eq 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error|fatal' \
			"$T/shim.stderr"; then
		fail "the shim reported: $(head -5 "$T/shim.stderr")"
	fi
	SHIM_PID=
}

finish() {
	stop_shim
	if [ "$FAILS" -ne 0 ]; then
		echo "FAIL: $FAILS check(s) failed (logs in $T; KEEP=1 keeps them)"
		[ "${KEEP:-0}" = 1 ] || tail -20 "$T/shim.log" "$T/shim.stderr" 2>/dev/null
		exit 1
	fi
	echo "PASS"
	exit 0
}

# The microVM tests' preconditions. need_qemu_vsock: QEMU with the vhost-user-vsock device
# (QEMU_BIN, default qemu-system-x86_64), else skip. need_static_agent: the guest image needs
# a static vmshim-agent; a sanitizer build links it dynamically, so skip. need_mkfs_ext4: the
# block-rootfs rows make ext4 images.
need_qemu_vsock() {
	QEMU_BIN=${QEMU_BIN:-qemu-system-x86_64}
	command -v "$QEMU_BIN" >/dev/null 2>&1 ||
		skip "$QEMU_BIN is not installed (apt-get install qemu-system-x86)"
	"$QEMU_BIN" -device help 2>/dev/null | grep -q '"vhost-user-vsock-pci"' ||
		skip "$QEMU_BIN has no vhost-user-vsock-pci device"
}

need_static_agent() {
	! LC_ALL=C readelf -l "$AGENT" 2>/dev/null | grep -q INTERP ||
		skip "this build's vmshim-agent is linked dynamically (sanitizer build): no guest image"
}

# build_guest DIR [build-guest options]: the guest image in DIR (log in DIR.log); skip (77)
# when the kernel package cannot be had, die when the build fails.
build_guest() {
	bg_dir=$1
	shift
	"$top_srcdir/contrib/guest/build-guest" --out "$bg_dir" "$@" >"$bg_dir.log" 2>&1
	bg_rc=$?
	[ $bg_rc -eq 3 ] && skip "the guest kernel cannot be had: $(tail -n 1 "$bg_dir.log")"
	[ $bg_rc -eq 0 ] || die "build-guest failed: $(tail -n 5 "$bg_dir.log")"
}

need_mkfs_ext4() {
	command -v mkfs.ext4 >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin
	command -v mkfs.ext4 >/dev/null 2>&1 || die "mkfs.ext4 not found (apt-get install e2fsprogs)"
}
