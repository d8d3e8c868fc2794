# cri_lib.sh: shared helpers of the CRI tests (tests/integration/cri_*.sh), sourced after lib.sh.
#
# Each test runs its own containerd with the CRI plugin on: root, state, gRPC and ttrpc sockets
# all in the test's private directory $T, so it touches nothing of another containerd on the
# machine. The plugin has two runtime handlers:
#   runc    io.containerd.runc.v2 (containerd's own runc shim): the control, which shows that
#           the test itself works on this machine;
#   vmshim  io.containerd.vmshim.v2, the built vmshim, found by containerd as
#           containerd-shim-vmshim-v2 in $T/bin (first on its PATH), with the runtime option
#           ConfigPath naming $T/vmshim.json; pod annotations io.vmshim.* are passed through;
#   vmshim-alt  the same runtime with ConfigPath naming $T/vmshim-alt.json, which widens the
#           annotation allow-list: two vmshim handlers side by side, each with its own file;
#   vmshim-qemu  the same runtime with ConfigPath naming $T/vmshim-qemu.json: vm.launch "qemu",
#           a TCG microVM per pod booted from the guest image cri_guest builds in $T/guest.
# There is no registry: the pause image (cri_pause, a static program that waits for signals)
# and a busybox-static image are written as OCI archives by cri_oci_image.py and imported with
# `ctr -n k8s.io images import`; the plugin's sandbox_image is the local pause image.
# Pods use the node's network namespace (NamespaceMode NODE), so no CNI plugin is needed:
# containerd 1.6 skips CNI for such pods (it still logs "failed to load cni" at start-up and
# reports NetworkReady=false; neither blocks anything). Root lacks CAP_SYS_RESOURCE here, so
# runc could not give the sandbox its oom_score_adj of -998: restrict_oom_score_adj = true.
# The CRI client is cri_client.py, which must run under Debian's /usr/bin/python3 (the one
# python3-grpcio is installed for).

PY=/usr/bin/python3
CRI_CLIENT=$top_srcdir/tests/integration/cri_client.py
OCI_IMAGE=$top_srcdir/tests/integration/cri_oci_image.py
PAUSE_BIN=$B/tests/integration/cri_pause
PAUSE_IMAGE=vmshim.test/pause:1
BUSYBOX_IMAGE=vmshim.test/busybox:1
CTRD_PID=
CGROUP_PARENT=
CRI_NS=k8s.io

# Skip (77) unless everything a private containerd with the CRI plugin needs is here.
cri_need() {
	[ "$(id -u)" = 0 ] || skip "the CRI tests need root (containerd, runc, mounts)"
	for c in containerd ctr runc ss; do
		command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
	done
	"$PY" -c 'import grpc, grpc_tools' 2>/dev/null ||
		skip "python3-grpcio and python3-grpc-tools are not installed for $PY"
	[ -x "$PAUSE_BIN" ] || skip "$PAUSE_BIN is not built"
	[ -x "$SHIM" ] || skip "$SHIM is not built"
	[ -x "$AGENT" ] || skip "$AGENT is not built"
	[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
		skip "/bin/busybox is not a static busybox (busybox-static)"
	grep -qw overlay /proc/filesystems || skip "the kernel has no overlay filesystem"
}

# cri METHOD JSON: one CRI call; prints the answer as JSON, or fails (2) with the gRPC status
# on stderr.
cri() {
	CRI_PYDIR=$T/py "$PY" "$CRI_CLIENT" -s "$T/containerd.sock" call "$@"
}

# jget PATH: a field of the JSON on stdin (a.b.0.c; prints nothing when it is absent; objects
# and lists as JSON).
jget() {
	"$PY" -c '
import json, sys
try:
    v = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
for k in sys.argv[1].split("."):
    if isinstance(v, list):
        v = v[int(k)] if k.isdigit() and int(k) < len(v) else None
    elif isinstance(v, dict):
        v = v.get(k)
    if v is None:
        sys.exit(0)
print(json.dumps(v) if isinstance(v, (dict, list)) else v)
' "$1"
}

# The OCI archives of the two images, written under $T/images.
cri_make_images() {
	mkdir -p "$T/images"
	"$PY" "$OCI_IMAGE" -n "$PAUSE_IMAGE" -o "$T/images/pause.tar" -e /pause \
		"$PAUSE_BIN=/pause" || die "cannot write the pause image"
	set --
	for a in sh cat echo sleep true false ls ps head grep env id kill yes dd wc sync uname; do
		set -- "$@" "bin/$a@busybox"
	done
	"$PY" "$OCI_IMAGE" -n "$BUSYBOX_IMAGE" -o "$T/images/busybox.tar" -c sh \
		"/bin/busybox=/bin/busybox" "$@" etc/ tmp/ || die "cannot write the busybox image"
}

# The vmshim configuration the vmshim handler's ConfigPath names (CRI_VMSHIM_CONFIG overrides).
cri_write_vmshim_config() {
	if [ -n "${CRI_VMSHIM_CONFIG:-}" ]; then
		printf '%s\n' "$CRI_VMSHIM_CONFIG" >"$T/vmshim.json"
	else
		printf '{"log_level": "debug"}\n' >"$T/vmshim.json"
	fi
	# The second handler's own file: it lets pods set io.vmshim.workers as well.
	printf '{"log_level": "debug", "allowed_annotations": ["workers"]}\n' >"$T/vmshim-alt.json"
	# The microVM handler's (used only once cri_guest has built $T/guest).
	cat >"$T/vmshim-qemu.json" <<JSON
{"log_level": "debug", "seccomp": true,
 "vm": {"launch": "qemu", "accel": "tcg", "kernel": "$T/guest/vmlinux",
        "initrd": "$T/guest/initramfs.cpio.gz", "boot_timeout_ms": 120000}}
JSON
}

# Build the microVM guest image in $T/guest (skips when it cannot be had here).
cri_guest() {
	need_qemu_vsock
	need_static_agent
	build_guest "$T/guest" --agent "$AGENT"
}

cri_write_containerd_config() {
	cat >"$T/containerd.toml" <<TOML
version = 2
root = "$T/root"
state = "$T/state"
[grpc]
  address = "$T/containerd.sock"
[ttrpc]
  address = "$T/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$T/cni/bin"
    conf_dir = "$T/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vmshim]
      runtime_type = "io.containerd.vmshim.v2"
      pod_annotations = ["io.vmshim.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vmshim.options]
        ConfigPath = "$T/vmshim.json"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vmshim-alt]
      runtime_type = "io.containerd.vmshim.v2"
      pod_annotations = ["io.vmshim.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vmshim-alt.options]
        ConfigPath = "$T/vmshim-alt.json"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vmshim-qemu]
      runtime_type = "io.containerd.vmshim.v2"
      pod_annotations = ["io.vmshim.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vmshim-qemu.options]
        ConfigPath = "$T/vmshim-qemu.json"
TOML
}

# Start the private containerd and import the images; the CRI plugin has seen both images when
# this returns.
cri_start() {
	mkdir -p "$T/bin" "$T/logs" "$T/py"
	ln -s "$SHIM" "$T/bin/containerd-shim-vmshim-v2"
	ln -s "$AGENT" "$T/bin/vmshim-agent"
	CGROUP_PARENT=/vmshim-cri-${T##*.}
	cri_make_images
	cri_write_vmshim_config
	cri_write_containerd_config
	"$PY" "$CRI_CLIENT" gen "$T/py" || die "cannot compile the CRI proto"
	PATH="$T/bin:$PATH" containerd --config "$T/containerd.toml" --log-level debug \
		>"$T/containerd.log" 2>&1 &
	CTRD_PID=$!
	i=0
	until ctr -a "$T/containerd.sock" version >/dev/null 2>&1; do
		kill -0 "$CTRD_PID" 2>/dev/null || die "containerd exited: $(tail -5 "$T/containerd.log")"
		[ $i -lt 600 ] || die "containerd did not answer in 60 s"
		sleep 0.1
		i=$((i + 1))
	done
	for img in pause busybox; do
		ctr -a "$T/containerd.sock" -n "$CRI_NS" images import "$T/images/$img.tar" \
			>>"$T/ctr.log" 2>&1 || die "ctr images import $img failed: $(tail -3 "$T/ctr.log")"
	done
	# The plugin learns of imported images from containerd's events, a moment later.
	for ref in "$PAUSE_IMAGE" "$BUSYBOX_IMAGE"; do
		i=0
		until [ -n "$(cri ImageService/ImageStatus "{\"image\":{\"image\":\"$ref\"}}" |
			jget image.id)" ]; do
			[ $i -lt 100 ] || die "the CRI plugin does not see $ref"
			sleep 0.1
			i=$((i + 1))
		done
	done
}

# Every process that belongs to this test's containerd: its own descendants; anything whose
# command line, environment, root or working directory is in $T (shims that daemonized, and
# what they started); anything in a cgroup under the pods' cgroup parent (the containers, even
# orphaned); and the descendants of all these. Not containerd itself, this test's shells and
# its CRI clients. One pass over /proc in Python: a shell loop over every process of a busy
# machine would take seconds.
cri_procs() {
	CRI_T=$T/ CRI_CG=${CGROUP_PARENT:+$CGROUP_PARENT/} CRI_CTRD=${CTRD_PID:-0} "$PY" -c '
import os
t = os.environ["CRI_T"].encode()
cg = os.environ["CRI_CG"].encode()
ctrd = int(os.environ["CRI_CTRD"])
me = os.getpid()
# No test directory, no containerd yet: match nothing rather than everything (init has
# parent 0, and every path starts with "/").
if len(t) < 6 or not t.startswith(b"/tmp/"):
    raise SystemExit(0)
if ctrd <= 1:
    ctrd = -1
def read(pid, name):
    try:
        with open("/proc/%d/%s" % (pid, name), "rb") as f:
            return f.read()
    except OSError:
        return b""
def link(pid, name):
    try:
        return os.readlink("/proc/%d/%s" % (pid, name)).encode()
    except OSError:
        return b""
pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
parent, cmd, found = {}, {}, set()
for pid in pids:
    st = read(pid, "stat")
    if not st:
        continue
    parent[pid] = int(st[st.rindex(b")") + 2:].split()[1])
    cmd[pid] = read(pid, "cmdline")
    if (t in cmd[pid] or t in read(pid, "environ") or (cg and cg in read(pid, "cgroup"))
            or t in link(pid, "root") + link(pid, "cwd")):
        found.add(pid)
changed = True
while changed:
    changed = False
    for pid, pp in parent.items():
        if pid not in found and (pp in found or pp == ctrd):
            found.add(pid)
            changed = True
for pid in sorted(found):
    c = cmd.get(pid, b"").replace(b"\0", b" ")
    if pid in (1, me, ctrd, os.getppid()) or c.startswith(b"containerd --config") or \
            b"cri_client.py" in c or \
            (os.path.basename(c.split(b" ")[0]) in (b"sh", b"bash", b"dash") and b"cri_" in c):
        continue
    print(pid)
'
}

# One line per process of cri_procs: pid, parent, command line.
cri_ps() {
	for pid in $(cri_procs); do
		printf '%s %s %s\n' "$pid" "$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" \
			"$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-150)"
	done
}

cri_mounts() {
	grep -F -- "$T/" /proc/self/mountinfo | awk '{print $5}'
}

# The pid serving a Unix socket path (from ss's listener table), or nothing.
socket_pid() {
	ss -xlpn 2>/dev/null | awk -v p="$1" '$5 == p {print}' |
		sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}

# The bundle directory containerd made for a task.
bundle_dir() {
	echo "$T/state/io.containerd.runtime.v2.task/$CRI_NS/$1"
}

# pod_config NAME [ANNOTATIONS-JSON]: a PodSandboxConfig in the node's network namespace.
pod_config() {
	printf '{"metadata":{"name":"%s","uid":"uid-%s-%s","namespace":"vmshim-test"},' "$1" "$1" "$$"
	ann=${2:-}
	[ -n "$ann" ] || ann='{}'
	printf '"log_directory":"%s/logs/%s","annotations":%s,' "$T" "$1" "$ann"
	printf '"linux":{"cgroup_parent":"%s","security_context":{"namespace_options":' "$CGROUP_PARENT"
	printf '{"network":"NODE","pid":"CONTAINER","ipc":"POD"}}}}'
}

# run_pod NAME HANDLER [ANNOTATIONS-JSON]: prints the sandbox id.
run_pod() {
	mkdir -p "$T/logs/$1"
	cri RunPodSandbox "{\"config\":$(pod_config "$1" "${3:-}"),\"runtime_handler\":\"$2\"}" |
		jget pod_sandbox_id
}

# create_ctr POD-NAME SANDBOX-ID NAME SCRIPT [POD-ANNOTATIONS-JSON]: a busybox container running
# `sh -c SCRIPT`; prints its id.
create_ctr() {
	script=$(printf '%s' "$4" | sed 's/\\/\\\\/g; s/"/\\"/g')
	cri CreateContainer "{\"pod_sandbox_id\":\"$2\",\"sandbox_config\":$(pod_config "$1" "${5:-}"),
		\"config\":{\"metadata\":{\"name\":\"$3\"},\"image\":{\"image\":\"$BUSYBOX_IMAGE\"},
		\"command\":[\"sh\",\"-c\",\"$script\"],\"log_path\":\"$3.log\"}}" | jget container_id
}

# The pid of a container or sandbox, from the verbose status.
ctr_pid() {
	cri ContainerStatus "{\"container_id\":\"$1\",\"verbose\":true}" | jget info.info | jget pid
}

sandbox_pid() {
	cri PodSandboxStatus "{\"pod_sandbox_id\":\"$1\",\"verbose\":true}" | jget info.info | jget pid
}

# is_descendant PID ANCESTOR
is_descendant() {
	p=$1
	while [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != 1 ]; do
		[ "$p" = "$2" ] && return 0
		p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)
	done
	return 1
}

# Remove every pod the test left, stop containerd, and sweep what a failed test left behind.
# A failed test first prints the errors and warnings containerd and the shims logged (the
# shims' logs reach containerd's through the bundles' log FIFOs), since CI keeps no $T.
cri_cleanup() {
	rc=$?
	if [ $rc -ne 0 ] && [ -f "$T/containerd.log" ]; then
		echo "--- errors and warnings logged during the test (last 40):"
		grep -E 'level=(error|warning)|"level":"(error|warning)"' "$T/containerd.log" |
			grep -v 'failed to load cni' | tail -n 40 | cut -c1-400
	fi
	if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
		for id in $(ls "$T/state/io.containerd.grpc.v1.cri/sandboxes" 2>/dev/null); do
			cri StopPodSandbox "{\"pod_sandbox_id\":\"$id\"}" >/dev/null 2>&1
			cri RemovePodSandbox "{\"pod_sandbox_id\":\"$id\"}" >/dev/null 2>&1
		done
	fi
	left=$(cri_procs)
	[ -n "$CTRD_PID" ] && kill -TERM "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null
	# shellcheck disable=SC2086
	[ -n "$left" ] && kill -9 $left 2>/dev/null
	for m in $(cri_mounts | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	if [ -n "$CGROUP_PARENT" ]; then
		for d in /sys/fs/cgroup"$CGROUP_PARENT" /sys/fs/cgroup/*"$CGROUP_PARENT"; do
			[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
		done
	fi
	cleanup
}

# The cgroup directories left under this test's pod cgroup parent (those of containers).
cri_cgroups() {
	for d in /sys/fs/cgroup"$CGROUP_PARENT" /sys/fs/cgroup/*"$CGROUP_PARENT"; do
		[ -d "$d" ] && find "$d" -mindepth 1 -type d
	done
}

cri_setup() {
	setup
	trap cri_cleanup EXIT
	cri_start
}
