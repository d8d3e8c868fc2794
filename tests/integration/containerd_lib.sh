# containerd_lib.sh: a private, real containerd for the containerd_*.sh tests (sourced).
#
# Every test run gets its own containerd (Debian's binary) with its own root, state, gRPC and
# ttrpc sockets under a mktemp -d directory ($T), the CRI plugin disabled, and PATH starting
# with $T/bin, where containerd-shim-vmshim-v2 is a link to the built vmshim (and
# vmshim-agent to the built agent, found there on PATH as on an installed system). No vmshim
# configuration file is written: the shim runs with its defaults (the embedded local VM).
# Containers run from $T/rootfs, a busybox-static root filesystem (ctr --rootfs). Each row is
# run against io.containerd.runc.v2 as well as io.containerd.vmshim.v2, so a broken test
# cannot pass. The namespace is unique per run ($NS), so shims of other runs are never
# touched; the trap stops what this run started (by pid) and removes $T. A test that cannot
# have containerd exits 77 and says why.

set -u

: "${top_builddir:=${VMSHIM_BUILDDIR:-$PWD}}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
B=$top_builddir
SHIM=${VMSHIM:-$B/shim/vmshim}
AGENT=${VMSHIM_AGENT:-$B/contrib/agent/vmshim-agent}
RUNTIMES=${CTD_RUNTIMES:-"io.containerd.runc.v2 io.containerd.vmshim.v2"}

T=
CTD_PID=
NS=vmshimtest-$$
FAILS=0

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}
pass() { echo "ok   $*"; }
die() {
	echo "FAIL: $*"
	exit 1
}

# Short runtime names for messages.
rt_name() {
	case $1 in
	*runc*) echo runc ;;
	*) echo vmshim ;;
	esac
}

ctd_need() {
	[ "$(id -u)" = 0 ] || skip "containerd needs root"
	command -v containerd >/dev/null || skip "containerd is not installed"
	command -v ctr >/dev/null || skip "ctr is not installed"
	command -v containerd-shim-runc-v2 >/dev/null || skip "containerd-shim-runc-v2 is not installed"
	command -v runc >/dev/null || skip "runc is not installed"
	[ -x /bin/busybox ] || skip "busybox-static is not installed"
	[ -x "$SHIM" ] || skip "$SHIM is not built"
	[ -x "$AGENT" ] || skip "$AGENT is not built"
}

ctr_() { ctr --address "$T/c.sock" -n "$NS" "$@"; }

# Every pid whose command line mentions our namespace (our shims) or our state directory
# (the local VMs' agents): they belong to this run only.
ctd_run_pids() {
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		[ "$p" = $$ ] && continue
		c=$({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
		case $c in
		*"-namespace $NS "* | *"/vmshim/$NS/"* | *"$T/"*) echo "$p" ;;
		esac
	done
}

ctd_stop() {
	[ -n "$CTD_PID" ] || return 0
	kill "$CTD_PID" 2>/dev/null
	wait "$CTD_PID" 2>/dev/null
	CTD_PID=
}

ctd_cleanup() {
	rc=$?
	if [ -n "$CTD_PID" ]; then
		for c in $(ctr_ task ls -q 2>/dev/null); do
			ctr_ task kill -s SIGKILL "$c" >/dev/null 2>&1
		done
		for c in $(ctr_ container ls -q 2>/dev/null); do
			ctr_ task rm -f "$c" >/dev/null 2>&1
			ctr_ container rm "$c" >/dev/null 2>&1
		done
	fi
	ctd_stop
	for p in $(ctd_run_pids); do
		kill -9 "$p" 2>/dev/null
	done
	if [ "$rc" != 0 ] && [ -n "$T" ] && [ -f "$T/containerd.log" ]; then
		echo "--- last lines of containerd's log"
		tail -n 40 "$T/containerd.log"
	fi
	if [ -n "$T" ] && [ "${KEEP:-0}" != 1 ]; then
		rm -rf "/run/vmshim/$NS" "$T"
	fi
}

# Start the private containerd and wait (bounded) until it answers.
ctd_start() {
	cat >"$T/config.toml" <<EOF
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$T/c.sock"
[ttrpc]
  address = "$T/c.sock.ttrpc"
[debug]
  level = "debug"
EOF
	PATH="$T/bin:$PATH" containerd --config "$T/config.toml" >>"$T/containerd.log" 2>&1 &
	CTD_PID=$!
	i=0
	while ! ctr --address "$T/c.sock" version >/dev/null 2>&1; do
		kill -0 "$CTD_PID" 2>/dev/null || die "containerd exited (see $T/containerd.log)"
		i=$((i + 1))
		[ $i -lt 600 ] || die "containerd did not answer within 30 s"
		sleep 0.05
	done
}

ctd_setup() {
	ctd_need
	T=$(mktemp -d /tmp/vmshim-ctd.XXXXXX) || die "mktemp"
	chmod 0755 "$T"
	trap ctd_cleanup EXIT
	trap 'exit 1' INT TERM
	mkdir -p "$T/bin" "$T/rootfs/bin" "$T/rootfs/proc" "$T/rootfs/sys" "$T/rootfs/dev" \
		"$T/rootfs/tmp" "$T/rootfs/etc"
	ln -s "$(cd "$(dirname "$SHIM")" && pwd)/$(basename "$SHIM")" "$T/bin/containerd-shim-vmshim-v2"
	ln -s "$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")" "$T/bin/vmshim-agent"
	cp /bin/busybox "$T/rootfs/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$T/rootfs/bin/$a"
	done
	ctd_start
}

# A unique container name per runtime and row.
cname() { echo "$1-$(rt_name "$2")"; }

# The pid of a running task (ctr task ls: TASK PID STATUS).
task_pid() { ctr_ task ls | awk -v id="$1" '$1 == id { print $2 }'; }
task_status() { ctr_ task ls | awk -v id="$1" '$1 == id { print $3 }'; }

# Wait (bounded) until a task reaches a status.
wait_status() {
	i=0
	while [ "$(task_status "$1")" != "$2" ]; do
		i=$((i + 1))
		[ $i -lt 400 ] || return 1
		sleep 0.05
	done
}

# shim_pids runc|vmshim [ID]: the shim daemons of our namespace (of ID's group), one pid per
# line; not the transient `start`s (vmshim's daemon keeps start's command line, so its pid
# files say).
shim_pids() {
	if [ "$1" = vmshim ]; then
		for f in /run/vmshim/"$NS"/${2:-*}.pid; do
			[ -f "$f" ] && p=$(cat "$f") && kill -0 "$p" 2>/dev/null && echo "$p"
		done
		return 0
	fi
	for d in /proc/[0-9]*; do
		c=$({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
		case $c in
		*containerd-shim-"$1"-v2*"-namespace $NS "*start*) ;;
		*containerd-shim-"$1"-v2*"-namespace $NS "*"-id $2"*) echo "${d#/proc/}" ;;
		esac
	done
}

# Import $T/rootfs as the image vmshim.test/busybox:latest (a docker-archive tar built here:
# one layer, PATH=/bin), so `ctr run IMAGE` gets containerd's snapshot mounts in Create.
ctd_import_image() {
	d=$T/image
	mkdir -p "$d"
	tar -C "$T/rootfs" -cf "$d/layer.tar" .
	diff=$(sha256sum <"$d/layer.tar" | cut -d' ' -f1)
	cat >"$d/config.json" <<EOF2
{"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
 "rootfs": {"type": "layers", "diff_ids": ["sha256:$diff"]}}
EOF2
	echo '[{"Config": "config.json", "RepoTags": ["vmshim.test/busybox:latest"], "Layers": ["layer.tar"]}]' >"$d/manifest.json"
	tar -C "$d" -cf "$T/image.tar" manifest.json config.json layer.tar
	ctr_ image import "$T/image.tar" >/dev/null 2>"$T/err" || die "image import: $(cat "$T/err")"
}

ctd_finish() {
	# The shims' and agents' stderr reach containerd's log through the log FIFOs.
	if grep -Eq 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$T/containerd.log"; then
		grep -E -m 5 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$T/containerd.log"
		fail "a sanitizer report in the shims' log (containerd's log)"
	fi
	if [ "$FAILS" -gt 0 ]; then
		echo "$FAILS failure(s)"
		exit 1
	fi
	exit 0
}
