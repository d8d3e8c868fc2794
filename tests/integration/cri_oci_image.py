#!/usr/bin/python3
# cri_oci_image.py: write a one-layer OCI image archive (the layout `ctr images import` reads)
# from files on this machine, so the CRI tests need no registry.
#
#   cri_oci_image.py -n REF -o OUT.tar [-e ENTRYPOINT]... [-c CMD]... ITEM...
#
# ITEM is SRC=DEST (a host file copied to DEST, mode kept), LINK@TARGET (a symlink) or DIR/
# (an empty directory). The archive holds oci-layout, index.json and blobs/sha256/: an
# uncompressed layer tar, the image config (entrypoint, cmd, PATH, the layer's diff id) and a
# manifest. The index names the manifest with the `io.containerd.image.name` annotation:
# without it `ctr images import` invents an `import-<date>` name.
import argparse
import hashlib
import io
import json
import os
import platform
import tarfile

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}


def add_bytes(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def layer_tar(items):
    """The layer: every ITEM, owned by root, time 0, so the digest is reproducible."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()

        def mkdirs(path):
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)

        for item in items:
            if "=" in item:
                src, dest = item.split("=", 1)
                mkdirs(dest)
                with open(src, "rb") as f:
                    data = f.read()
                add_bytes(tar, dest.strip("/"), data, os.stat(src).st_mode & 0o7777)
            elif "@" in item:
                link, target = item.split("@", 1)
                mkdirs(link)
                info = tarfile.TarInfo(link.strip("/"))
                info.type = tarfile.SYMTYPE
                info.linkname = target
                info.mode = 0o777
                tar.addfile(info)
            elif item.endswith("/"):
                mkdirs(item + "x")
            else:
                raise SystemExit("cri_oci_image: bad item %r (SRC=DEST, LINK@TARGET or DIR/)" % item)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", required=True, help="image reference, e.g. vmshim.test/pause:1")
    ap.add_argument("-o", required=True, help="output archive")
    ap.add_argument("-e", action="append", default=[], help="entrypoint word")
    ap.add_argument("-c", action="append", default=[], help="cmd word")
    ap.add_argument("items", nargs="+")
    args = ap.parse_args()

    arch = ARCH.get(platform.machine(), platform.machine())
    blobs = {}

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    layer = layer_tar(args.items)
    layer_digest = blob(layer)
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    if args.e:
        config["config"]["Entrypoint"] = args.e
    if args.c:
        config["config"]["Cmd"] = args.c
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blob(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    tag = args.n.rsplit(":", 1)[1] if ":" in args.n.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": blob(manifest_bytes),
            "size": len(manifest_bytes),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"io.containerd.image.name": args.n,
                            "org.opencontainers.image.ref.name": tag},
        }],
    }
    with tarfile.open(args.o, mode="w") as out:
        add_bytes(out, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add_bytes(out, "index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in sorted(blobs.items()):
            add_bytes(out, "blobs/sha256/" + digest.split(":", 1)[1], data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
