#!/bin/bash
# pb_interop.sh: vmshim's protobuf encoding against Google's implementation (python3-protobuf,
# with protoc from python3-grpc-tools compiling the same .proto files): what vmshim encodes,
# Google's decoder reads with the expected values (and re-encodes to the same bytes), and what
# Google's encoder writes, vmshim decodes to the expected tree. Requests, responses (the Status
# enum, Timestamps, the cgroups Metrics in Stats' Any) and Events/Forward envelopes.
. "$(dirname "$0")/lib.sh"
PB=$B/tests/integration/pb_client
[ -x "$PB" ] || skip "pb_client not built"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
"$PY" -c 'import grpc_tools.protoc, google.protobuf' 2>/dev/null ||
	skip "python3-grpc-tools (grpc_tools and google.protobuf) is not installed"
setup
mkdir "$T/py"
"$PY" -m grpc_tools.protoc -I"$top_srcdir/common/proto" --python_out="$T/py" \
	"$top_srcdir"/common/proto/*.proto || die "grpc_tools.protoc failed"

enc() { "$PB" encode "$1" "$2" >"$T/$3.bin" || die "pb_client encode $1"; }
enc Create "{\"id\":\"c1\",\"bundle\":\"/b\",\"rootfs\":[{\"type\":\"overlay\",\"source\":\"overlay\",\"options\":[\"lowerdir=/l\",\"upperdir=/u\"]}],\"terminal\":true,\"stdout\":\"/o\"}" create
enc Exec '{"id":"c1","exec_id":"e1","spec":{"args":["sh","-c","echo é"],"cwd":"/"}}' exec
enc Kill '{"id":"c1","exec_id":"e1","signal":9,"all":true}' kill
enc ResizePty '{"id":"c1","width":4294967295,"height":1}' resize
"$PB" encode-response State '{"id":"c1","bundle":"/b","pid":42,"status":"RUNNING","terminal":true,"exit_status":0,"exited_at":"2026-11-22T05:50:44.123456789Z","exec_id":""}' >"$T/state.bin"
"$PB" encode-response Stats '{"stats":{"cpu":{"usage_usec":7},"memory":{"usage_bytes":4096,"limit_bytes":1048576},"pids":{"current":2}}}' >"$T/stats.bin"
"$PB" encode-response Pids '{"processes":[{"pid":1},{"pid":77}]}' >"$T/pids.bin"
"$PB" encode-event /tasks/exit '{"container_id":"c1","id":"e1","pid":77,"exit_status":137,"exited_at":"2026-11-22T05:50:44.000000001Z"}' >"$T/exit.bin"

cd "$T/py" || die "cd"
"$PY" - "$T" <<'PY' >"$T/py.out" 2>&1
import sys
sys.path.insert(0, ".")
import ttrpc_pb2, shim_pb2, metrics_pb2, forward_pb2, events_pb2, runtimeoptions_pb2, wkt_pb2
T = sys.argv[1]
fails = 0
def check(what, ok):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        fails += 1
def req(name, msg):
    raw = open(f"{T}/{name}.bin", "rb").read()
    r = ttrpc_pb2.Request()
    r.ParseFromString(raw)
    m = msg()
    m.ParseFromString(r.payload)
    # Google's encoder writes the same bytes back (field order, varints, lengths).
    check(f"{name}: re-encoded identically", r.SerializeToString() == raw and m.SerializeToString() == r.payload)
    return r, m
r, m = req("create", shim_pb2.CreateTaskRequest)
check("create: envelope", r.service == "containerd.task.v2.Task" and r.method == "Create")
check("create: fields", m.id == "c1" and m.bundle == "/b" and m.terminal and m.stdout == "/o" and m.stdin == "")
check("create: rootfs", len(m.rootfs) == 1 and m.rootfs[0].type == "overlay" and list(m.rootfs[0].options) == ["lowerdir=/l", "upperdir=/u"])
r, m = req("exec", shim_pb2.ExecProcessRequest)
check("exec: spec Any", m.spec.type_url == "types.containerd.io/opencontainers/runtime-spec/1/Process" and m.spec.value.decode() == '{"args":["sh","-c","echo é"],"cwd":"/"}')
r, m = req("kill", shim_pb2.KillRequest)
check("kill: fields", m.signal == 9 and m.all and m.exec_id == "e1")
r, m = req("resize", shim_pb2.ResizePtyRequest)
check("resize: uint32 max", m.width == 4294967295 and m.height == 1)
def resp(name, msg):
    raw = open(f"{T}/{name}.bin", "rb").read()
    r = ttrpc_pb2.Response()
    r.ParseFromString(raw)
    m = msg()
    m.ParseFromString(r.payload)
    check(f"{name}: status OK", r.status.code == 0)
    return m
m = resp("state", shim_pb2.StateResponse)
check("state: enum RUNNING = 2", m.status == 2 and m.pid == 42 and m.terminal)
check("state: exited_at", m.exited_at.seconds == 1795326644 and m.exited_at.nanos == 123456789)
m = resp("stats", shim_pb2.StatsResponse)
check("stats: Any type URL", m.stats.type_url == "io.containerd.cgroups.v1.Metrics")
x = metrics_pb2.Metrics()
x.ParseFromString(m.stats.value)
check("stats: cpu ns, memory, pids", x.cpu.usage.total == 7000 and x.memory.usage.usage == 4096 and x.memory.usage.limit == 1048576 and x.pids.current == 2)
m = resp("pids", shim_pb2.PidsResponse)
check("pids: processes", [p.pid for p in m.processes] == [1, 77])
f = forward_pb2.ForwardRequest()
f.ParseFromString(open(f"{T}/exit.bin", "rb").read())
e = f.envelope
check("forward: envelope", e.namespace == "ns1" and e.topic == "/tasks/exit" and e.timestamp.seconds == 1795326644 and e.timestamp.nanos == 123456789)
check("forward: type URL is the message name", e.event.type_url == "containerd.events.TaskExit")
te = events_pb2.TaskExit()
te.ParseFromString(e.event.value)
check("forward: TaskExit", te.container_id == "c1" and te.id == "e1" and te.pid == 77 and te.exit_status == 137 and te.exited_at.nanos == 1)

# Google's encoder -> vmshim's decoder.
def out(name, method, m):
    r = ttrpc_pb2.Request(service="containerd.task.v2.Task", method=method, payload=m.SerializeToString(), timeout_nano=5)
    r.metadata.add(key="k", value="v")
    open(f"{T}/{name}.py.bin", "wb").write(r.SerializeToString())
opts = runtimeoptions_pb2.Options(config_path="/etc/vmshim/g.json")
c = shim_pb2.CreateTaskRequest(id="c2", bundle="/b2", stdin="/i", terminal=False)
c.rootfs.add(type="bind", source="/src", target="/t", options=["rbind", "ro"])
c.options.type_url = "runtimeoptions.v1.Options"
c.options.value = opts.SerializeToString()
out("create", "Create", c)
u = shim_pb2.UpdateTaskRequest(id="c2")
u.annotations["a"] = "1"
u.annotations["io.vmshim.group"] = "g"
u.resources.type_url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
u.resources.value = b'{"pids":{"limit":5}}'
out("update", "Update", u)
out("wait", "Wait", shim_pb2.WaitRequest(id="c2", exec_id="e"))
sys.exit(1 if fails else 0)
PY
rc=$?
cat "$T/py.out"
[ $rc -eq 0 ] && pass "Google's decoder reads vmshim's encoding" || fail "Google's decoder (see above)"

dec() {
	got=$("$PB" decode <"$T/$1.py.bin" 2>&1)
	[ "$got" = "$2" ] && pass "vmshim decodes Google's $1: $got" || fail "$1: got '$got', want '$2'"
}
dec create 'containerd.task.v2.Task Create {"bundle":"/b2","id":"c2","options":{"config_path":"/etc/vmshim/g.json"},"rootfs":[{"options":["rbind","ro"],"source":"/src","target":"/t","type":"bind"}],"stdin":"/i"}'
dec update 'containerd.task.v2.Task Update {"annotations":{"a":"1","io.vmshim.group":"g"},"id":"c2","resources":{"pids":{"limit":5}}}'
dec wait 'containerd.task.v2.Task Wait {"exec_id":"e","id":"c2"}'

[ "$FAILS" -eq 0 ] || { echo "FAIL: $FAILS check(s) failed"; exit 1; }
echo "PASS"
