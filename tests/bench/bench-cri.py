#!/usr/bin/python3
# bench-cri.py: the measuring half of `make bench-cri` (bench-cri.sh starts the containerd).
#
#   bench-cri.py SOCKET TESTDIR HANDLER:SHIM-EXE[:VM-EXE...]...
#
# For each handler, in the order given, N pods (BENCH_PODS, default 10; BENCH_QEMU_PODS,
# default 3, for the microVM handler vmshim-qemu, whose TCG guests are slow to boot and each
# hold their memory) one after the other: RunPodSandbox + CreateContainer + StartContainer
# timed in this process (so the client's own start-up is not counted), then, with all N pods
# running, the memory of the processes that serve them (the shims; and the VM: the agent of
# the local VM, or QEMU, vmshim-vsock and the shim's mounter of a microVM: RSS and PSS from
# /proc), then every pod is stopped and removed. Prints figures; asserts nothing.
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import cri_client  # noqa: E402

N = int(os.environ.get("BENCH_PODS", "10"))


def ours(testdir):
    """The pids whose command line or environment names the test directory."""
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if testdir.encode() in cmd or testdir.encode() in env:
            yield int(d)


def exe(pid):
    try:
        return os.path.realpath("/proc/%d/exe" % pid)
    except OSError:
        return ""


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def mem_kb(pid):
    """(RSS, PSS) in kB."""
    rss = pss = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def pod_config(testdir, name):
    logdir = os.path.join(testdir, "logs", name)
    os.makedirs(logdir, exist_ok=True)
    return {
        "metadata": {"name": name, "uid": "uid-" + name, "namespace": "vmshim-bench"},
        "log_directory": logdir,
        "linux": {"security_context": {"namespace_options": {
            "network": "NODE", "pid": "CONTAINER", "ipc": "POD"}}},
    }


def bench(client, testdir, handler, shim_exe, vm_exes):
    n = int(os.environ.get("BENCH_QEMU_PODS", "3")) if handler == "vmshim-qemu" else N
    times = []
    pods = []
    try:
        for i in range(n):
            cfg = pod_config(testdir, "%s-%d" % (handler, i))
            t0 = time.monotonic()
            sid = client.call("RunPodSandbox", {"config": cfg, "runtime_handler": handler})[
                "pod_sandbox_id"]
            pods.append(sid)
            cid = client.call("CreateContainer", {
                "pod_sandbox_id": sid, "sandbox_config": cfg,
                "config": {"metadata": {"name": "main"},
                           "image": {"image": "vmshim.test/busybox:1"},
                           "command": ["sleep", "100000"], "log_path": "main.log"}})[
                "container_id"]
            client.call("StartContainer", {"container_id": cid})
            times.append(time.monotonic() - t0)
        procs = list(ours(testdir))
        procs += [c for p in procs for c in children(p) if c not in procs]
        # The microVM's mounter is a fork of the shim: it counts with the VM.
        shims = [p for p in procs if exe(p) == shim_exe and comm(p) != "vmshim-mounter"]
        vms = [p for p in procs if exe(p) in vm_exes or comm(p) == "vmshim-mounter"]
        shim_mem = [mem_kb(p) for p in shims]
        vm_mem = [mem_kb(p) for p in vms]
    except client.grpc.RpcError as e:
        print("%-7s failed after %d pods: %s %s" % (handler, len(pods), e.code().name, e.details()))
        return None
    finally:
        for sid in pods:
            try:
                client.call("StopPodSandbox", {"pod_sandbox_id": sid})
                client.call("RemovePodSandbox", {"pod_sandbox_id": sid})
            except client.grpc.RpcError as e:
                print("%-7s cleanup of %s: %s" % (handler, sid[:12], e.details()))

    def per_pod(mem):
        return (sum(m[0] for m in mem) / n, sum(m[1] for m in mem) / n)

    med = statistics.median(times) * 1000
    srss, spss = per_pod(shim_mem)
    line = ("%-11s %2d pods: RunPodSandbox+CreateContainer+StartContainer median %7.1f ms "
            "(min %.1f, max %.1f) | per pod: shim RSS %6.0f kB PSS %6.0f kB (%d shim process(es))"
            % (handler, n, med, min(times) * 1000, max(times) * 1000, srss, spss, len(shims)))
    if vm_exes:
        vrss, vpss = per_pod(vm_mem)
        line += " | VM RSS %7.0f kB PSS %7.0f kB (%d process(es))" % (vrss, vpss, len(vms))
    print(line)
    return med, spss


def main(argv):
    sock, testdir = argv[0], argv[1]
    client = cri_client.Client(sock)
    results = {}
    for spec in argv[2:]:
        parts = spec.split(":")
        handler, shim_exe = parts[0], os.path.realpath(parts[1])
        vm_exes = [os.path.realpath(p) for p in parts[2:]]
        results[handler] = bench(client, testdir, handler, shim_exe, vm_exes)
    if results.get("runc") and results.get("vmshim"):
        (rt, rp), (vt, vp) = results["runc"], results["vmshim"]
        print("ratio vmshim/runc: start-up time %.2f, shim PSS per pod %.2f" % (vt / rt, vp / rp))
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
