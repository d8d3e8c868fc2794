#!/usr/bin/python3
# cri_client.py: a small CRI client (gRPC, package runtime.v1) for vmshim's CRI tests.
#
# Kubernetes reaches containerd's CRI plugin over gRPC; Debian has no crictl, so the tests
# bring this client. It compiles cri_api.proto (the subset of the CRI the tests speak) with
# grpc_tools.protoc into a directory ($CRI_PYDIR, or a temporary one removed at exit) the first
# time it is needed, and nothing generated is kept in the source tree.
#
#   cri_client.py -s SOCKET call METHOD JSON   one call; prints the answer as JSON (proto field
#                                              names), or "ERROR CODE details" on stderr, exit 2
#   cri_client.py gen DIR                      only generate the Python modules into DIR
#
# METHOD is a RuntimeService method (RunPodSandbox) or ImageService/ImageStatus. Debian's grpc is
# importable only from Debian's own /usr/bin/python3, hence the interpreter line.
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = "cri_api.proto"


def generate(outdir):
    """Compile cri_api.proto into outdir (cri_api_pb2.py, cri_api_pb2_grpc.py)."""
    from grpc_tools import protoc

    os.makedirs(outdir, exist_ok=True)
    # Write into a private directory first and rename, so concurrent clients sharing outdir
    # never import a half-written module.
    tmp = tempfile.mkdtemp(dir=outdir, prefix=".gen")
    try:
        rc = protoc.main(["protoc", "-I" + HERE, "--python_out=" + tmp,
                          "--grpc_python_out=" + tmp, os.path.join(HERE, PROTO)])
        if rc != 0:
            raise SystemExit("cri_client: protoc failed on %s (%d)" % (PROTO, rc))
        for name in ("cri_api_pb2.py", "cri_api_pb2_grpc.py"):
            os.replace(os.path.join(tmp, name), os.path.join(outdir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_modules():
    """Import the generated modules, generating them first when needed."""
    outdir = os.environ.get("CRI_PYDIR")
    if not outdir:
        outdir = tempfile.mkdtemp(prefix="cri-py.")
        import atexit
        atexit.register(shutil.rmtree, outdir, True)
    if not os.path.exists(os.path.join(outdir, "cri_api_pb2_grpc.py")):
        generate(outdir)
    sys.path.insert(0, outdir)
    import cri_api_pb2
    import cri_api_pb2_grpc
    return cri_api_pb2, cri_api_pb2_grpc


class Client:
    """One gRPC channel to a CRI socket; call() takes and returns plain dicts."""

    def __init__(self, socket_path, timeout=120.0):
        import grpc

        self.grpc = grpc
        self.pb, self.pb_grpc = load_modules()
        self.channel = grpc.insecure_channel("unix://" + socket_path)
        self.runtime = self.pb_grpc.RuntimeServiceStub(self.channel)
        self.image = self.pb_grpc.ImageServiceStub(self.channel)
        self.timeout = timeout

    def call(self, method, request):
        from google.protobuf import json_format

        stub = self.runtime
        if "/" in method:
            service, method = method.split("/", 1)
            if service != "ImageService":
                raise SystemExit("cri_client: unknown service " + service)
            stub = self.image
        fn = getattr(stub, method, None)
        if fn is None:
            raise SystemExit("cri_client: unknown method " + method)
        req_type = getattr(self.pb, method + "Request")
        req = json_format.ParseDict(request, req_type())
        resp = fn(req, timeout=self.timeout)
        # Fields at their default (state SANDBOX_READY, exit code 0) are printed too.
        return json_format.MessageToDict(resp, preserving_proto_field_name=True,
                                         including_default_value_fields=True)

    def close(self):
        self.channel.close()


def main(argv):
    sock = os.environ.get("CRI_SOCKET", "")
    timeout = float(os.environ.get("CRI_TIMEOUT", "120"))
    while argv and argv[0].startswith("-"):
        if argv[0] == "-s" and len(argv) > 1:
            sock = argv[1]
            argv = argv[2:]
        elif argv[0] == "-t" and len(argv) > 1:
            timeout = float(argv[1])
            argv = argv[2:]
        else:
            break
    if len(argv) == 2 and argv[0] == "gen":
        generate(argv[1])
        return 0
    if len(argv) != 3 or argv[0] != "call" or not sock:
        sys.stderr.write("usage: cri_client.py [-s SOCKET] [-t SECS] call METHOD JSON | gen DIR\n")
        return 64
    client = Client(sock, timeout)
    try:
        out = client.call(argv[1], json.loads(argv[2]))
    except client.grpc.RpcError as e:
        sys.stderr.write("ERROR %s %s\n" % (e.code().name, e.details()))
        return 2
    finally:
        client.close()
    # Bytes fields (ExecSync's stdout) come out base64 encoded: decode them for the caller.
    if argv[1] == "ExecSync":
        import base64
        for k in ("stdout", "stderr"):
            out[k] = base64.b64decode(out.get(k, "")).decode("utf-8", "replace")
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
