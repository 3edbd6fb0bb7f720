"""Build a small, deterministic root filesystem tarball for `docker import`.

The lab has no container registry, so its images are made from binaries
already installed on the machine: each given binary is copied together with
every shared library `ldd` lists for it (and the dynamic loader), a static
busybox can be added with its applet symlinks, and extra directories and
files complete the tree.

The tarball is deterministic: entries are sorted, owned by root (0:0), and
all carry the same mtime, so rebuilding from unchanged inputs gives the same
sha256. The output file is only replaced when its content changes.

Prints one JSON object on stdout: {"changed", "sha256", "path", "size",
"entries"}. Standard library only.

Example:
  build_rootfs.py --output /var/lib/crosshost-lab/images/socat.tar \\
      --busybox /bin/busybox --binary /usr/bin/socat \\
      --dir /tmp:1777 --file /etc/passwd 0644 $'root:x:0:0:root:/root:/bin/sh\\n'
"""

import argparse
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import tempfile

# 2000-01-01T00:00:00Z: a fixed mtime for every entry.
FIXED_MTIME = 946684800
# Where busybox lives in the image; applet links point at it.
BUSYBOX_DEST = "/bin/busybox"
APPLET_DIR = "/bin"


class BuildError(Exception):
    pass


def norm(path):
    """Normalise an in-image path: absolute, no trailing slash, no '..'."""
    if not path.startswith("/"):
        path = "/" + path
    path = os.path.normpath(path)
    if path.startswith("//"):
        path = path[1:]
    if ".." in path.split("/"):
        raise BuildError("invalid path in image: %s" % path)
    return path


def ldd_deps(binary):
    """Absolute paths of the shared libraries (and loader) ldd lists."""
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(["ldd", binary], capture_output=True, text=True, env=env, check=False)
    out = proc.stdout + proc.stderr
    if "not a dynamic executable" in out or "statically linked" in out:
        return []
    if proc.returncode != 0:
        raise BuildError("ldd %s failed: %s" % (binary, out.strip()))
    deps = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            raise BuildError("ldd %s: missing library: %s" % (binary, line))
        m = re.match(r"^\S+\s+=>\s+(/\S+)\s+\(0x[0-9a-f]+\)$", line)
        if m:
            deps.append(m.group(1))
            continue
        m = re.match(r"^(/\S+)\s+\(0x[0-9a-f]+\)$", line)
        if m:  # the dynamic loader, e.g. /lib64/ld-linux-x86-64.so.2
            deps.append(m.group(1))
    return deps


def busybox_applets(busybox):
    """In-image paths of busybox applets: every applet `busybox --list` names,
    all in /bin (so that a PATH of /usr/local/bin:/usr/bin:/bin finds `ip`,
    `ping`, ... too, which busybox would otherwise place in /sbin)."""
    proc = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise BuildError("%s --list failed: %s" % (busybox, proc.stderr.strip()))
    names = sorted({n for n in proc.stdout.split() if n and "/" not in n})
    return [norm(APPLET_DIR + "/" + n) for n in names]


class Tree:
    """In-image entries: path -> ('dir', mode) | ('file', mode, source or bytes) | ('link', target)."""

    def __init__(self):
        self.entries = {}

    def add(self, path, entry, replace=False):
        path = norm(path)
        if path == "/":
            return
        old = self.entries.get(path)
        if old is not None and not replace:
            if old != entry and not (old[0] == entry[0] == "dir"):
                raise BuildError("conflicting entries for %s" % path)
            return
        self.entries[path] = entry

    def add_parents(self):
        for path in list(self.entries):
            parent = os.path.dirname(path)
            while parent not in ("/", ""):
                if parent in self.entries:
                    if self.entries[parent][0] != "dir":
                        raise BuildError("%s is needed as a directory" % parent)
                else:
                    self.entries[parent] = ("dir", 0o755)
                parent = os.path.dirname(parent)

    def write(self, fileobj):
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(self.entries):
                entry = self.entries[path]
                info = tarfile.TarInfo(path.lstrip("/"))
                info.mtime = FIXED_MTIME
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                kind = entry[0]
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    info.mode = entry[1]
                    tar.addfile(info)
                elif kind == "link":
                    info.type = tarfile.SYMTYPE
                    info.mode = 0o777
                    info.linkname = entry[1]
                    tar.addfile(info)
                else:
                    data = entry[2]
                    if isinstance(data, str):  # a path on this machine
                        with open(data, "rb") as src:
                            data = src.read()
                    info.type = tarfile.REGTYPE
                    info.mode = entry[1]
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return len(self.entries)


def source_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode) & 0o755


def parse_mode(text, what):
    try:
        return int(text, 8)
    except ValueError:
        raise BuildError("invalid mode %r for %s" % (text, what)) from None


def build_tree(args):
    tree = Tree()
    explicit = set()
    binaries = []

    for spec in args.binary:
        src, dest = spec.partition("=")[::2]
        dest = norm(dest or src)
        real = os.path.realpath(src)  # e.g. redis-server -> redis-check-rdb: store the real file under the given name
        if not os.path.isfile(real):
            raise BuildError("binary not found: %s" % src)
        tree.add(dest, ("file", source_mode(real) | 0o111, real), replace=True)
        explicit.add(dest)
        binaries.append(real)

    if args.busybox:
        real = os.path.realpath(args.busybox)
        if not os.path.isfile(real):
            raise BuildError("busybox not found: %s" % args.busybox)
        tree.add(BUSYBOX_DEST, ("file", 0o755, real), replace=True)
        explicit.add(BUSYBOX_DEST)
        binaries.append(real)

    for binary in binaries:
        for lib in ldd_deps(binary):
            real = os.path.realpath(lib)
            if not os.path.isfile(real):
                raise BuildError("library not found: %s (for %s)" % (lib, binary))
            # Keep the path ldd reports (what the loader looks for), as a real file.
            tree.add(lib, ("file", source_mode(real), real))

    for spec in args.dir:
        path, mode = spec.partition(":")[::2]
        tree.add(path, ("dir", parse_mode(mode, path) if mode else 0o755), replace=True)

    for path, mode, content in args.file:
        tree.add(path, ("file", parse_mode(mode, path), content.encode()), replace=True)
        explicit.add(norm(path))

    if args.busybox:
        for applet in busybox_applets(args.busybox):
            if applet in explicit or applet == BUSYBOX_DEST:
                continue  # a real binary of that name wins over the applet
            if applet in tree.entries:
                continue
            tree.add(applet, ("link", BUSYBOX_DEST))

    tree.add_parents()
    return tree


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--output", required=True, help="tarball to write")
    parser.add_argument("--binary", action="append", default=[], metavar="SRC[=DEST]",
                        help="binary to copy (symlinks resolved), with its ldd libraries")
    parser.add_argument("--busybox", metavar="PATH", help="static busybox to install as /bin/busybox with applet symlinks")
    parser.add_argument("--dir", action="append", default=[], metavar="PATH[:MODE]",
                        help="directory to create (octal mode, default 0755)")
    parser.add_argument("--file", action="append", default=[], nargs=3, metavar=("PATH", "MODE", "CONTENT"),
                        help="file to create with the given octal mode and text content")
    parser.add_argument("--check", action="store_true",
                        help="only report whether the tarball would change; write nothing")
    args = parser.parse_args(argv)

    try:
        tree = build_tree(args)
        out_dir = os.path.dirname(os.path.abspath(args.output))
        if not args.check:
            os.makedirs(out_dir, exist_ok=True)
        # Next to the output, so that os.replace() is atomic (anywhere with --check).
        fd, tmp = tempfile.mkstemp(prefix=".rootfs-", suffix=".tar", dir=None if args.check else out_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                count = tree.write(fh)
            new_sha = sha256_file(tmp)
            old_sha = sha256_file(args.output) if os.path.isfile(args.output) else None
            changed = new_sha != old_sha
            if changed and not args.check:
                os.chmod(tmp, 0o644)
                os.replace(tmp, args.output)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (BuildError, OSError) as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1

    print(json.dumps({
        "changed": changed,
        "sha256": new_sha,
        "path": os.path.abspath(args.output),
        "entries": count,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
