#!/usr/bin/env python3
"""Pack a root filesystem directory into a single-layer container image, written as a
docker-archive tar (the `docker save` format): what `ctr images import`, `kind load
image-archive`, `docker load` and `podman load` take. No daemon, no registry, no base image.

Reproducible: entries sorted, every mtime 0, uid/gid 0 unless --owner says otherwise, no
user or group names, no timestamps except --created (default: $SOURCE_DATE_EPOCH, else 1970).
The same directory and options give a byte-identical archive.

usage: mkimage.py ROOTFS OUT.tar --ref NAME:TAG [--entrypoint JSON] [--cmd JSON]
                  [--env K=V ...] [--user U] [--workdir DIR] [--label K=V ...]
                  [--owner PATH=UID:GID ...] [--created RFC3339]
Prints a one-line summary (archive size, layer size and its gzip size) on stderr.
"""
import argparse
import datetime
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile
import zlib

CHUNK = 1 << 20


def parse_owners(specs):
    owners = []
    for spec in specs:
        path, _, ids = spec.partition("=")
        uid, _, gid = ids.partition(":")
        if not path.startswith("/") or not uid.isdigit() or not gid.isdigit():
            sys.exit(f"mkimage: bad --owner {spec!r} (want /PATH=UID:GID)")
        owners.append((path.strip("/"), int(uid), int(gid)))
    return owners


def owner_of(arc, owners):
    for path, uid, gid in owners:
        if arc == path or arc.startswith(path + "/"):
            return uid, gid
    return 0, 0


def walk_sorted(rootfs):
    """Every path below rootfs, relative, parents before children, in byte order."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            paths.append(os.path.relpath(os.path.join(dirpath, name), rootfs))
    return sorted(paths, key=lambda p: p.split(os.sep))


def write_layer(rootfs, fileobj, owners):
    count = 0
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for arc in walk_sorted(rootfs):
            full = os.path.join(rootfs, arc)
            st = os.lstat(full)
            ti = tarfile.TarInfo(arc)
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.uid, ti.gid = owner_of(arc, owners)
            ti.uname = ti.gname = ""
            ti.mtime = 0
            if stat.S_ISDIR(st.st_mode):
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif stat.S_ISLNK(st.st_mode):
                ti.type = tarfile.SYMTYPE
                ti.linkname = os.readlink(full)
                tf.addfile(ti)
            elif stat.S_ISREG(st.st_mode):
                ti.size = st.st_size
                with open(full, "rb") as f:
                    tf.addfile(ti, f)
            else:
                sys.exit(f"mkimage: {arc}: only directories, regular files and symlinks are packed")
            count += 1
    return count


def digest_and_gzip_size(path):
    h = hashlib.sha256()
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    gz = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            gz += len(z.compress(chunk))
    gz += len(z.flush())
    return h.hexdigest(), gz


def default_created():
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_member(tf, name, size, fileobj):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = 0o644
    ti.mtime = 0
    ti.uname = ti.gname = ""
    tf.addfile(ti, fileobj)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rootfs")
    ap.add_argument("out")
    ap.add_argument("--ref", required=True, help="image name with tag, e.g. shopstream.local/shopstream:0.1.0")
    ap.add_argument("--entrypoint", help="JSON list")
    ap.add_argument("--cmd", help="JSON list")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--user")
    ap.add_argument("--workdir")
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("--owner", action="append", default=[])
    ap.add_argument("--created", default=None)
    a = ap.parse_args()
    if not os.path.isdir(a.rootfs):
        sys.exit(f"mkimage: {a.rootfs} is not a directory")
    created = a.created or default_created()
    owners = parse_owners(a.owner)

    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".layer-", suffix=".tar") as layer:
        entries = write_layer(a.rootfs, layer, owners)
        layer.flush()
        layer_size = os.path.getsize(layer.name)
        layer_hex, gz_size = digest_and_gzip_size(layer.name)

        config = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + a.env}
        if a.user:
            config["User"] = a.user
        if a.entrypoint:
            config["Entrypoint"] = json.loads(a.entrypoint)
        if a.cmd:
            config["Cmd"] = json.loads(a.cmd)
        if a.workdir:
            config["WorkingDir"] = a.workdir
        if a.label:
            config["Labels"] = dict(kv.split("=", 1) for kv in a.label)
        image_config = {
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_hex]},
            "history": [{"created": created, "created_by": "dev/mkimage.py"}],
        }
        cfg_bytes = json.dumps(image_config, sort_keys=True, separators=(",", ":")).encode()
        cfg_hex = hashlib.sha256(cfg_bytes).hexdigest()
        manifest = [{"Config": cfg_hex + ".json", "RepoTags": [a.ref], "Layers": [layer_hex + "/layer.tar"]}]
        man_bytes = json.dumps(manifest, separators=(",", ":")).encode()

        tmp_out = a.out + ".tmp"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tf:
            add_member(tf, cfg_hex + ".json", len(cfg_bytes), io.BytesIO(cfg_bytes))
            with open(layer.name, "rb") as f:
                add_member(tf, layer_hex + "/layer.tar", layer_size, f)
            add_member(tf, "manifest.json", len(man_bytes), io.BytesIO(man_bytes))
        os.replace(tmp_out, a.out)

    mb = 1024 * 1024
    print(f"mkimage: {a.ref}: archive {os.path.getsize(a.out) / mb:.1f} MiB, layer {layer_size / mb:.1f} MiB "
          f"({entries} entries), gzip-compressed layer {gz_size / mb:.1f} MiB; config sha256:{cfg_hex[:12]}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
