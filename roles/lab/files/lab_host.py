"""The life cycle of one simulated Docker host of the lab, and of the lab's bridge.

A lab host is a network namespace named like the host (``ip netns``), joined to the
lab's Linux bridge by a veth pair (``eth0`` inside), with its own dockerd started in
that namespace, and firewall rules in it that let nothing leave ``eth0`` for an
address outside the lab's subnet (so a pull of a missing image or a DNS query to the
machine's resolver fails at once instead of timing out, and nothing leaves the lab).
With the spec's ``fs`` and ``sshd``, the host also has a persistent mount namespace of
its own (its own /run with its engine at /run/docker.sock, its own directories over
machine paths such as /etc/crosshost-ambassador), shared by its engine and its sshd,
which listens on the host's address: an SSH session there looks like a real host.

    lab_host.py present SPEC_JSON [--check]   # namespaces, veth, address, route, firewall, files, engine, sshd
    lab_host.py absent SPEC_JSON [--check]    # stop sshd, stop and reap the engine, unmount, delete it all
    lab_host.py bridge-present SPEC_JSON [--check]
    lab_host.py bridge-absent SPEC_JSON [--check]
    lab_host.py arch                          # the machine's multiarch library directory name, and the
                                              # hard limits (open files, processes) an engine started here gets

Each command reads the current state first and changes only what differs; it prints
one JSON object: ``{"changed": bool, "actions": [sentences]}`` (with ``--check``: what
it would do). On failure it prints one sentence on stderr and exits 1. Standard
library only; runs as root on the machine (``ip``, ``iptables``, ``nsenter``, ``unshare``, ``mount``).

The spec keys are documented in :data:`HOST_KEYS` (optional: :data:`HOST_FS_KEYS` under
``fs``, :data:`SSHD_KEYS` under ``sshd``) and :data:`BRIDGE_KEYS`; the role
builds them (roles/lab/vars/main.yml).
"""

import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time

HOST_KEYS = {
    "name": "host name = network namespace name",
    "netns_dir": "where ip netns keeps its mount points (/run/netns)",
    "veth": "name of the host-side veth on the bridge",
    "address": "IPv4 address of eth0 in the namespace",
    "prefixlen": "its prefix length",
    "gateway": "the bridge's address: the namespace's default route",
    "bridge": "the lab bridge",
    "subnet": "the lab subnet: the only destination eth0 may send to",
    "state_dir": "the host's state directory (engine data-root, log, files)",
    "run_dir": "the host's run directory (socket, pidfile, exec-root)",
    "pidfile": "the engine's pidfile",
    "log": "the engine's log file",
    "dockerd": "path of the engine's executable",
    "dockerd_args": "its arguments",
    "files": "path -> text content of files to write (daemon.json, marker); a change restarts the engine",
    "cgroup_parent": "the engine's --cgroup-parent",
    "timeout": "seconds the engine gets to stop on SIGTERM",
    "path_env": "PATH the engine runs with",
}
# Optional keys of HOST_KEYS (podman's API service): more environment for the engine, and whether the
# helper writes the pidfile (podman system service writes none).
HOST_OPTIONAL_KEYS = {
    "env": "variable -> value added to the engine's environment (CONTAINERS_CONF)",
    "write_pidfile": "true: the helper writes the engine's pid to pidfile (an engine that writes none)",
    "forward_chain": "the chain containers' forwarded traffic is filtered in (default DOCKER-USER)",
}
# Optional: the host's own file system view and its sshd (see HOST_FS_KEYS, SSHD_KEYS). With "fs", the
# engine and sshd share one persistent mount namespace in which /run is the host's own (its engine's
# socket at /run/docker.sock) and each of "binds" is a per-host directory over a machine path.
HOST_FS_KEYS = {
    "mntns": "file the host's mount namespace is bound to (in a directory of its own below run_dir)",
    "binds": "machine path (a directory, created if missing) -> the host's own directory mounted over it",
    "docker_sock": "the engine's socket: /run/docker.sock in the host's view (a link to it)",
}
SSHD_KEYS = {
    "sshd": "path of sshd",
    "config": "path of its configuration file (written from config_text; a change restarts sshd)",
    "config_text": "the configuration",
    "pidfile": "its pidfile (PidFile in config_text)",
    "log": "its log file",
}
# absent needs only these of HOST_KEYS.
ABSENT_KEYS = ("name", "netns_dir", "veth", "state_dir", "run_dir", "pidfile", "dockerd", "cgroup_parent", "timeout")
# What absent also stops when the spec has it: the host's sshd ({"pidfile": ..., "sshd": ...}).
BRIDGE_KEYS = {"bridge": "the lab bridge", "address": "its IPv4 address", "prefixlen": "its prefix length"}

# The firewall chain in each namespace (iptables and ip6tables, filter table).
CHAIN = "LAB-EGRESS"
COMMENT = "crosshost-lab"
# Docker jumps from FORWARD to DOCKER-USER before its own rules and never flushes it:
# forwarded (container) traffic is filtered there, the engine's own in OUTPUT.
DOCKER_USER = "DOCKER-USER"
CGROUP_ROOT = "/sys/fs/cgroup"
# The marker the role writes in each host's state directory: its "dockerd" is the engine's argv.
MARKER = "lab-host.json"
LEFTOVER_GRACE = 15


class Failure(Exception):
    """Something could not be done; the message says what and why."""


# ---- Pure helpers (unit-tested) ----

def unescape_mount(field):
    """A path as /proc/self/mountinfo writes it (octal escapes for space, tab, newline, backslash)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo_text):
    """Every mount point listed in the text of /proc/self/mountinfo."""
    return [unescape_mount(line.split()[4]) for line in mountinfo_text.splitlines() if len(line.split()) > 4]


def below(paths, roots):
    """The paths equal to or below any of roots, deepest first (the order to unmount or delete them)."""
    found = set()
    for path in paths:
        for root in roots:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                found.add(path)
    return sorted(found, key=lambda p: (p.count("/"), p), reverse=True)


def mac_of(address):
    """The MAC address of a lab host's eth0: locally administered, made of its IPv4 address. A host torn down and
    made again keeps it, so its neighbours' ARP caches stay right (a new random MAC left the other hosts and the
    machine sending to the old one for seconds after a host came back: connections to it timed out)."""
    return "02:00:" + ":".join("%02x" % int(part) for part in address.split("."))


def veth_paired(root_link, ns_eth0):
    """Whether the host-side link and the namespace's eth0 (``ip -json -details`` objects) are one veth pair."""
    if not root_link or not ns_eth0:
        return False
    return ((root_link.get("linkinfo") or {}).get("info_kind") == "veth"
            and root_link.get("link_index") == ns_eth0.get("ifindex")
            and ns_eth0.get("link_index") == root_link.get("ifindex"))


def inet_addresses(link):
    """["a.b.c.d/len", ...] of an ``ip -json address`` object."""
    return ["%s/%s" % (a["local"], a["prefixlen"]) for a in (link or {}).get("addr_info", []) if a.get("family") == "inet"]


def egress_rules(subnet, family=4):
    """The rules of CHAIN (as ``iptables -S CHAIN`` prints them), for addresses of ``family``.

    IPv4: the lab subnet passes, anything else is rejected at once (ICMP port unreachable:
    connect() and DNS lookups fail with "connection refused", no timeout). IPv6: the lab
    has none, so everything is rejected.
    """
    rules = ["-N %s" % CHAIN]
    if family == 4:
        rules.append('-A %s -d %s -m comment --comment %s -j RETURN' % (CHAIN, subnet, COMMENT))
        reject = "icmp-port-unreachable"
    else:
        reject = "icmp6-port-unreachable"
    rules.append('-A %s -m comment --comment %s -j REJECT --reject-with %s' % (CHAIN, COMMENT, reject))
    return rules


def egress_jumps(family=4, forward=DOCKER_USER):
    """(chain, rule arguments) of the jumps to CHAIN: traffic leaving through eth0 only. Containers' IPv4
    traffic is caught in ``forward``: DOCKER-USER for dockerd, FORWARD itself for podman (netavark has no
    DOCKER-USER, and appends its own jump to FORWARD, after this one)."""
    jump = ["-o", "eth0", "-m", "comment", "--comment", COMMENT, "-j", CHAIN]
    if family == 4:
        return [("OUTPUT", jump), (forward, jump)]
    return [("OUTPUT", jump), ("FORWARD", jump)]


def host_view_script(run_dir, binds, docker_sock, keep):
    """The shell commands that make a new mount namespace the host's own view (run inside it, as root).

    Each of ``binds`` (machine path -> the host's directory) is mounted over the machine path;
    /run becomes an empty tmpfs in which only the host's run directory (``run_dir``, mounted
    back from ``keep``, a directory outside /run), sshd's privilege separation directory and
    /run/docker.sock (a link to ``docker_sock``) exist. /var/run is /run on Debian, so a
    session on the host sees its own engine at the default socket and nobody else's.
    """
    quote = shlex.quote
    lines = ["set -e"]
    for target, source in sorted(binds.items()):
        lines.append("mount --bind %s %s" % (quote(source), quote(target)))
    lines += [
        "mount --bind %s %s" % (quote(run_dir), quote(keep)),
        # The copies of the machine's mounts that would keep other hosts' network namespaces (ip netns'
        # nsfs files) and other engines' container file systems (overlay) alive, and all of /run, go:
        # otherwise deleting another host's namespace would not free it while this one lives.
        "awk '{for (i = 7; i <= NF; i++) if ($i == \"-\") { if ($(i + 1) == \"nsfs\" || $(i + 1) == \"overlay\" "
        "|| $5 == \"/run\" || index($5, \"/run/\") == 1) print $5; break }}' /proc/self/mountinfo | sort -r "
        "| while read -r m; do umount -l \"$m\" 2>/dev/null || true; done",
        "mount -t tmpfs -o mode=0755,nosuid,nodev lab-run /run",
        "mkdir -p %s /run/sshd /run/lock" % quote(run_dir),
        "mount --move %s %s" % (quote(keep), quote(run_dir)),
        "ln -s %s /run/docker.sock" % quote(docker_sock),
    ]
    return "\n".join(lines) + "\n"


def cgroup_dirs(cgroup_root, cgroup_parent, max_depth=5):
    """The cgroup directories of one engine (its --cgroup-parent in every hierarchy, and below), deepest first."""
    suffix = cgroup_parent.strip("/")
    found = []
    base_depth = cgroup_root.rstrip("/").count("/")
    for dirpath, dirnames, _files in os.walk(cgroup_root):
        if dirpath.count("/") - base_depth >= max_depth:
            dirnames[:] = []
        if ("/" + suffix + "/") in ("/" + os.path.relpath(dirpath, cgroup_root) + "/"):
            found.append(dirpath)
    return sorted(set(found), key=lambda p: (p.count("/"), p), reverse=True)


def multiarch():
    """The machine's multiarch triplet (x86_64-linux-gnu, aarch64-linux-gnu, ...), as Debian names library dirs."""
    name = sysconfig.get_config_var("MULTIARCH")
    if name:
        return name
    try:
        return subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise Failure("cannot tell this machine's multiarch directory (Python's sysconfig MULTIARCH is empty and "
                      "dpkg-architecture is missing): install dpkg-dev")


def hard_limits(pid_max_path="/proc/sys/kernel/pid_max"):
    """The hard limits of open files and processes that an engine started by this helper runs with. Podman
    gives root's containers 1048576 of each unless told; without CAP_SYS_RESOURCE (as on these machines) runc
    may not raise a limit above the engine's own, and every container fails to start. Podman 4.3's service
    lowers its own process limit to the kernel's pid_max (seen on these machines: 96369 -> 32768)."""
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    try:
        with open(pid_max_path) as handle:
            pid_max = int(handle.read().strip())
    except (OSError, ValueError):
        pid_max = None
    if pid_max and (nproc == resource.RLIM_INFINITY or nproc > pid_max):
        nproc = pid_max
    return {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1], "nproc": nproc}


# ---- Processes ----

def read_pid(pidfile):
    try:
        with open(pidfile) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def running_as(pid, executable):
    """Whether process ``pid`` exists and runs ``executable`` (so a recycled pid is not mistaken for it)."""
    if not pid:
        return False
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    if exe.endswith(" (deleted)"):
        exe = exe[:-len(" (deleted)")]
    return os.path.realpath(exe) == os.path.realpath(executable)


def processes_naming(dirs):
    """Pids of the processes whose command line names a path below one of ``dirs`` (such as an sshd
    whose namespace was deleted under it), other than this script's own runs (their spec names them)."""
    prefixes = [d.rstrip("/") + "/" for d in dirs]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        if "lab_host.py" not in text and any(prefix in text for prefix in prefixes):
            found.append(int(entry))
    return found


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has ended: only its parent's wait is missing.
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pids, timeout):
    deadline = time.time() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.time() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left


def end_processes(pids, grace):
    """SIGTERM, then SIGKILL to those still there after ``grace`` seconds; returns the pids that got SIGKILL."""
    pids = sorted(set(p for p in pids if p != os.getpid()))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    left = wait_gone(pids, grace)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    still = wait_gone(left, 10)
    if still:
        raise Failure("processes %s did not end after SIGKILL" % ", ".join(map(str, still)))
    return left


def recorded_argv(state_dir):
    """The engine's argv the host's marker records (the engine it was started with), or None."""
    try:
        with open(os.path.join(state_dir, MARKER)) as handle:
            argv = json.load(handle).get("dockerd")
    except (OSError, ValueError, AttributeError):
        return None
    return argv if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv) else None


def recorded_executable(state_dir):
    """The engine executable the host's marker names, or None."""
    argv = recorded_argv(state_dir)
    return argv[0] if argv else None


def podman_remove_all(engine_argv):
    """For a podman API service's argv (``podman GLOBAL... system service ...``), the command that removes
    all of its containers (they outlive the service, run by conmon), else None."""
    if not engine_argv or os.path.basename(engine_argv[0]) != "podman" or "system" not in engine_argv:
        return None
    return engine_argv[:engine_argv.index("system")] + ["rm", "--all", "--force", "--time=2"]


def engine_executables(spec):
    """The executables a running engine of this host may have: the spec's, and the one its marker recorded
    (a host whose lab_engines entry changed, or torn down after leaving lab_engines, runs the old one)."""
    found = [spec["dockerd"]]
    recorded = recorded_executable(spec["state_dir"])
    if recorded and recorded not in found:
        found.append(recorded)
    return found


def running_as_any(pid, executables):
    """Whether process ``pid`` runs one of ``executables`` (a list, or one path)."""
    if isinstance(executables, str):
        executables = [executables]
    return any(running_as(pid, executable) for executable in executables)


def stop_engine(pidfile, executable, timeout):
    """Stop the engine of ``pidfile`` if it runs ``executable`` (a path or a list of paths; it stops its
    containers on SIGTERM); True if it ran."""
    pid = read_pid(pidfile)
    if not running_as_any(pid, executable):
        return False
    end_processes([pid], timeout)
    return True


def start_engine(argv, log, env):
    """Start ``argv`` detached (own session, output appended to ``log``); return its pid."""
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True, cwd="/")
    return proc.pid


# ---- Commands ----

class Host(object):
    def __init__(self, spec, check):
        self.spec = spec
        self.check = check
        self.actions = []

    # helpers
    def run(self, argv, what=None, ok=(0,)):
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
        if proc.returncode not in ok:
            raise Failure("%s failed (%s): %s" % (what or " ".join(argv), proc.returncode,
                                                  (proc.stderr or proc.stdout).strip()))
        return proc

    def change(self, sentence, argv=None, func=None):
        self.actions.append(sentence)
        if self.check:
            return
        if argv:
            self.run(argv, sentence)
        if func:
            func()

    def json_of(self, argv):
        proc = self.run(argv, ok=(0, 1, 255))
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout or "[]")

    @property
    def netns(self):
        return os.path.join(self.spec["netns_dir"], self.spec["name"])

    def in_ns(self, argv):
        return ["nsenter", "--net=" + self.netns] + argv

    def netns_mounted(self):
        with open("/proc/self/mountinfo") as handle:
            return self.netns in mount_points(handle.read())

    def link(self, name, netns=None):
        argv = ["ip"] + (["-netns", netns] if netns else []) + ["-json", "-details", "address", "show", "dev", name]
        found = self.json_of(argv)
        return found[0] if found else None

    # present
    def present(self):
        s = self.spec
        created = False
        if not self.netns_mounted():
            if os.path.exists(self.netns):
                self.change("remove the stale namespace file %s" % self.netns, func=lambda: os.unlink(self.netns))
            self.change("create the network namespace %s" % s["name"], ["ip", "netns", "add", s["name"]])
            created = True
            if self.check:
                self.actions.append("start the engine of %s" % s["name"])
                return
        self.network()
        self.firewall()
        # Read before files() rewrites the marker: the engine that runs may be another executable.
        executables = engine_executables(s)
        restart = self.files() or created
        fresh_view = self.host_view()
        self.engine(restart or fresh_view, executables)
        self.sshd(fresh_view)

    def network(self):
        s = self.spec
        name = s["name"]
        root, eth0 = self.link(s["veth"]), self.link("eth0", name)
        if not veth_paired(root, eth0):
            if root:
                self.change("delete the unpaired veth %s" % s["veth"], ["ip", "link", "delete", "dev", s["veth"]])
                eth0 = self.link("eth0", name) if not self.check else eth0
            if eth0:
                self.change("delete the unpaired eth0 of %s" % name, ["ip", "-netns", name, "link", "delete", "dev", "eth0"])
            self.change("create the veth pair %s <-> %s:eth0" % (s["veth"], name),
                        ["ip", "link", "add", "name", s["veth"], "type", "veth", "peer", "name", "eth0", "netns", name])
            if self.check:
                root, eth0 = {}, {}
            else:
                root, eth0 = self.link(s["veth"]), self.link("eth0", name)
        # eth0 announces its address (gratuitous ARP) when it comes up or its MAC changes, so that the machine and
        # the other hosts stop sending to a MAC it no longer has (their cached entries could end up FAILED).
        notify = "/proc/sys/net/ipv4/conf/eth0/arp_notify"
        if not eth0 or self.run(self.in_ns(["cat", notify]), ok=(0, 1)).stdout.strip() != "1":
            self.change("make eth0 of %s announce its address" % name, self.in_ns(["sh", "-c", "echo 1 > " + notify]))
        mac = mac_of(s["address"])
        if (eth0 or {}).get("address") != mac:
            self.change("give eth0 of %s the MAC address %s" % (name, mac),
                        ["ip", "-netns", name, "link", "set", "dev", "eth0", "address", mac])
        want = "%s/%s" % (s["address"], s["prefixlen"])
        have = inet_addresses(eth0)
        if have != [want]:
            if have:
                self.change("remove other addresses from eth0 of %s" % name,
                            ["ip", "-netns", name, "-4", "address", "flush", "dev", "eth0"])
            self.change("give eth0 of %s the address %s" % (name, want),
                        ["ip", "-netns", name, "address", "add", want, "dev", "eth0"])
        lo = self.link("lo", name)
        for ifname, link in (("eth0", eth0), ("lo", lo)):
            if "UP" not in (link or {}).get("flags", []):
                self.change("bring %s of %s up" % (ifname, name), ["ip", "-netns", name, "link", "set", "dev", ifname, "up"])
        routes = self.json_of(["ip", "-netns", name, "-json", "-4", "route", "show", "default"]) or []
        if len(routes) != 1 or routes[0].get("gateway") != s["gateway"] or routes[0].get("dev") != "eth0":
            self.change("route %s by default via %s" % (name, s["gateway"]),
                        ["ip", "-netns", name, "-4", "route", "replace", "default", "via", s["gateway"], "dev", "eth0"])
        if root.get("master") != s["bridge"] or "UP" not in root.get("flags", []):
            self.change("attach %s to %s and bring it up" % (s["veth"], s["bridge"]),
                        ["ip", "link", "set", "dev", s["veth"], "master", s["bridge"], "up"])

    def firewall(self):
        for family, tool in ((4, "iptables"), (6, "ip6tables")):
            want = egress_rules(self.spec["subnet"], family)
            have = self.run(self.in_ns([tool, "-w", "-S", CHAIN]), ok=(0, 1)).stdout.splitlines()
            if have != want:
                if not have:
                    self.change("create the %s chain %s in %s" % (tool, CHAIN, self.spec["name"]),
                                self.in_ns([tool, "-w", "-N", CHAIN]))
                else:
                    self.change("flush the %s chain %s in %s" % (tool, CHAIN, self.spec["name"]),
                                self.in_ns([tool, "-w", "-F", CHAIN]))
                for rule in want[1:]:
                    self.change("%s in %s: %s" % (tool, self.spec["name"], rule),
                                self.in_ns([tool, "-w"] + rule.split()))
            for chain, jump in egress_jumps(family, self.spec.get("forward_chain") or DOCKER_USER):
                exists = self.run(self.in_ns([tool, "-w", "-S", chain]), ok=(0, 1)).returncode == 0
                if not exists:
                    self.change("create the %s chain %s in %s" % (tool, chain, self.spec["name"]),
                                self.in_ns([tool, "-w", "-N", chain]))
                elif self.run(self.in_ns([tool, "-w", "-C", chain] + jump), ok=(0, 1)).returncode == 0:
                    continue
                self.change("%s in %s: jump from %s to %s for eth0" % (tool, self.spec["name"], chain, CHAIN),
                            self.in_ns([tool, "-w", "-I", chain, "1"] + jump))

    def files(self):
        s = self.spec
        changed = False
        for path in (s["state_dir"], s["run_dir"]):
            if not os.path.isdir(path):
                self.change("create the directory %s" % path, func=lambda p=path: os.makedirs(p, 0o700))
            elif not self.check and (os.stat(path).st_mode & 0o777) != 0o700:
                os.chmod(path, 0o700)
        for path, content in sorted(s["files"].items()):
            try:
                with open(path) as handle:
                    same = handle.read() == content
            except OSError:
                same = False
            if not same:
                changed = True
                self.change("write %s" % path, func=lambda p=path, c=content: _write(p, c))
        return changed

    def engine(self, restart, executables=None):
        s = self.spec
        executables = executables or [s["dockerd"]]
        pid = read_pid(s["pidfile"])
        runs = running_as_any(pid, executables)
        if runs and not restart and not self.in_host_view(pid):
            self.change("stop the engine of %s (pid %d): it runs outside the host's mount namespace" % (s["name"], pid),
                        func=lambda: stop_engine(s["pidfile"], executables, s["timeout"]))
            runs = False
        if runs and restart:
            self.change("stop the engine of %s (pid %d) to apply new settings" % (s["name"], pid),
                        func=lambda: stop_engine(s["pidfile"], executables, s["timeout"]))
            runs = False
        if not runs:
            if pid is not None and os.path.exists(s["pidfile"]):
                self.change("remove the stale pidfile %s" % s["pidfile"], func=lambda: _unlink(s["pidfile"]))
            self.change("start the engine of %s" % s["name"], func=self.start_engine)

    def start_engine(self):
        s = self.spec
        env = dict(s.get("env") or {}, PATH=s["path_env"])
        pid = start_engine(self.enter() + [s["dockerd"]] + list(s["dockerd_args"]), s["log"], env)
        # nsenter without --fork execs the engine: pid is the engine's.
        if s.get("write_pidfile"):
            _write(s["pidfile"], "%d\n" % pid)

    # the host's own view of the file system, and its sshd
    @property
    def fs(self):
        return self.spec.get("fs")

    def enter(self):
        """nsenter arguments that put a process into the host (its network and, with fs, mount namespace)."""
        return ["nsenter", "--net=" + self.netns] + (["--mount=" + self.fs["mntns"]] if self.fs else [])

    def mntns_mounted(self):
        with open("/proc/self/mountinfo") as handle:
            return self.fs["mntns"] in mount_points(handle.read())

    def in_host_view(self, pid):
        """Whether process pid runs in the host's mount namespace (always true without fs)."""
        if not self.fs or self.check and not self.mntns_mounted():
            return True
        try:
            return os.stat("/proc/%d/ns/mnt" % pid).st_ino == os.stat(self.fs["mntns"]).st_ino
        except OSError:
            return False

    def host_view(self):
        """Make the host's persistent mount namespace when it is missing; True if it was made."""
        if not self.fs or self.mntns_mounted():
            return False
        fs, s = self.fs, self.spec
        holder = os.path.dirname(fs["mntns"])
        keep = os.path.join(s["state_dir"], ".run")
        for path in [holder, keep] + sorted(fs["binds"]) + sorted(fs["binds"].values()):
            if not os.path.isdir(path):
                self.change("create the directory %s" % path, func=lambda p=path: os.makedirs(p, 0o755))
        with open("/proc/self/mountinfo") as handle:
            holder_mounted = holder in mount_points(handle.read())
        if not holder_mounted:
            # A namespace can be bound to a file only on a mount that does not propagate into it.
            self.change("make %s a private mount" % holder, ["mount", "--bind", holder, holder])
            self.change("make %s private" % holder, ["mount", "--make-private", holder])
        self.change("create the mount namespace of %s (its own /run, /run/docker.sock, %s)"
                    % (s["name"], ", ".join(sorted(fs["binds"]))),
                    func=lambda: self.make_view(keep))
        return True

    def make_view(self, keep):
        fs, s = self.fs, self.spec
        with open(fs["mntns"], "a"):
            pass
        script = host_view_script(s["run_dir"], fs["binds"], fs["docker_sock"], keep)
        proc = subprocess.run(["unshare", "--mount=" + fs["mntns"], "--propagation", "private", "sh", "-c", script],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        if proc.returncode != 0:
            if self.mntns_mounted():
                subprocess.run(["umount", fs["mntns"]], check=False)
            raise Failure("cannot make the mount namespace of %s: %s" % (s["name"], proc.stdout.strip()))

    def sshd(self, restart):
        """Start the host's sshd (in its namespaces) unless it runs with the current configuration."""
        d, name = self.spec.get("sshd"), self.spec["name"]
        if not d:
            return
        try:
            with open(d["config"]) as handle:
                same = handle.read() == d["config_text"]
        except OSError:
            same = False
        if not same:
            self.change("write %s" % d["config"], func=lambda: _write(d["config"], d["config_text"]))
        pid = read_pid(d["pidfile"])
        runs = running_as(pid, d["sshd"])
        if runs and (restart or not same or not self.in_host_view(pid)):
            self.change("stop sshd of %s (pid %d) to apply new settings" % (name, pid),
                        func=lambda: stop_engine(d["pidfile"], d["sshd"], 10))
            runs = False
        if not runs:
            self.change("start sshd of %s" % name, func=self.start_sshd)

    def start_sshd(self):
        d, name = self.spec["sshd"], self.spec["name"]
        test = self.run(self.enter() + [d["sshd"], "-t", "-f", d["config"]], ok=(0, 1, 255))
        if test.returncode != 0:
            raise Failure("sshd of %s refuses its configuration %s: %s"
                          % (name, d["config"], (test.stderr or test.stdout).strip()))
        _unlink(d["pidfile"])
        pid = start_engine(self.enter() + [d["sshd"], "-D", "-e", "-f", d["config"]], d["log"],
                           {"PATH": self.spec["path_env"]})
        deadline = time.time() + 10
        while time.time() < deadline and alive(pid) and read_pid(d["pidfile"]) != pid:
            time.sleep(0.1)
        if read_pid(d["pidfile"]) != pid or not alive(pid):
            raise Failure("sshd of %s did not start; see %s" % (name, d["log"]))

    # absent
    def absent(self):
        s = self.spec
        sshd = s.get("sshd")
        if sshd and running_as(read_pid(sshd["pidfile"]), sshd["sshd"]):
            self.change("stop sshd of %s" % s["name"], func=lambda: stop_engine(sshd["pidfile"], sshd["sshd"], 10))
        executables = engine_executables(s)
        remove_all = podman_remove_all(recorded_argv(s["state_dir"]))
        if remove_all and self.netns_mounted() and (not self.fs or self.mntns_mounted()):
            # Podman's containers outlive its service (each has its conmon): remove them first, in the host's
            # namespaces, with its containers.conf (its network definitions), so netavark tears their networks down.
            conf = os.path.join(s["state_dir"], "containers.conf")
            env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CONTAINERS_CONF": conf}
            self.change("remove the podman containers of %s" % s["name"],
                        func=lambda: subprocess.run(self.enter() + remove_all, env=env, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL, timeout=120, check=False))
        if running_as_any(read_pid(s["pidfile"]), executables):
            self.change("stop the engine of %s" % s["name"],
                        func=lambda: stop_engine(s["pidfile"], executables, s["timeout"]))
        # After a killed engine, its containerd (in the namespace) and containers (in its cgroups) can be left.
        left = set()
        if self.netns_mounted():
            proc = self.run(["ip", "netns", "pids", s["name"]], ok=(0, 1, 255))
            left.update(int(p) for p in proc.stdout.split() if p.isdigit())
        cgroups = cgroup_dirs(CGROUP_ROOT, s["cgroup_parent"])
        for directory in cgroups:
            try:
                with open(os.path.join(directory, "cgroup.procs")) as handle:
                    left.update(int(p) for p in handle.read().split() if p.isdigit())
            except OSError:
                pass
        left.update(processes_naming([s["state_dir"], s["run_dir"]]))
        left = sorted(p for p in left if alive(p))
        if left:
            self.change("end the processes left by %s: %s" % (s["name"], " ".join(map(str, left))),
                        func=lambda: end_processes(left, LEFTOVER_GRACE))
        with open("/proc/self/mountinfo") as handle:
            mounts = below(mount_points(handle.read()), [s["state_dir"], s["run_dir"]])
        for mount in mounts:
            self.change("unmount %s" % mount, ["umount", "--lazy", mount])
        if self.netns_mounted():
            # Deleting the namespace deletes eth0 and, with it, its peer on the bridge.
            self.change("delete the network namespace %s" % s["name"], ["ip", "netns", "delete", s["name"]])
        elif os.path.exists(self.netns):
            self.change("remove the stale namespace file %s" % self.netns, func=lambda: _unlink(self.netns))
        if self.link(s["veth"]) and (self.check or not self.netns_mounted()):
            self.change("delete the veth %s" % s["veth"], func=self.delete_veth)
        for directory in cgroups:
            self.change("remove the cgroup %s" % directory, func=lambda d=directory: _rmdir(d))
        for path in (s["run_dir"], s["state_dir"]):
            if os.path.lexists(path):
                self.change("delete %s" % path, func=lambda p=path: shutil.rmtree(p))

    def delete_veth(self):
        """Delete the host-side veth, unless it went meanwhile (it goes with the namespace, asynchronously)."""
        proc = self.run(["ip", "link", "delete", "dev", self.spec["veth"]], ok=(0, 1, 2))
        if proc.returncode != 0 and self.link(self.spec["veth"]):
            raise Failure("delete the veth %s failed: %s" % (self.spec["veth"], (proc.stderr or proc.stdout).strip()))

    # bridge
    def bridge_present(self):
        s = self.spec
        link = self.link(s["bridge"])
        if link and (link.get("linkinfo") or {}).get("info_kind") != "bridge":
            raise Failure("%s exists and is not a bridge (%s): choose another lab_bridge"
                          % (s["bridge"], (link.get("linkinfo") or {}).get("info_kind", "unknown kind")))
        if not link:
            self.change("create the bridge %s" % s["bridge"], ["ip", "link", "add", "name", s["bridge"], "type", "bridge"])
        want = "%s/%s" % (s["address"], s["prefixlen"])
        if want not in inet_addresses(link):
            self.change("give %s the address %s" % (s["bridge"], want), ["ip", "address", "add", want, "dev", s["bridge"]])
        if "UP" not in (link or {}).get("flags", []):
            self.change("bring %s up" % s["bridge"], ["ip", "link", "set", "dev", s["bridge"], "up"])

    def bridge_absent(self):
        s = self.spec
        link = self.link(s["bridge"])
        if link and (link.get("linkinfo") or {}).get("info_kind") == "bridge":
            self.change("delete the bridge %s" % s["bridge"], ["ip", "link", "delete", "dev", s["bridge"], "type", "bridge"])


def _write(path, content):
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _rmdir(path):
    """Remove an empty directory that may be gone already (the engine removes its containers' cgroups)."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


COMMANDS = {
    "present": ("present", HOST_KEYS),
    "absent": ("absent", ABSENT_KEYS),
    "bridge-present": ("bridge_present", BRIDGE_KEYS),
    "bridge-absent": ("bridge_absent", ("bridge",)),
}


def main(argv):
    if argv[:1] == ["arch"]:
        print(json.dumps(dict(hard_limits(), changed=False, multiarch=multiarch())))
        return 0
    if len(argv) not in (2, 3) or argv[0] not in COMMANDS or argv[2:] not in ([], ["--check"]):
        sys.stderr.write("usage: lab_host.py {%s} SPEC_JSON [--check] | lab_host.py arch\n" % ",".join(sorted(COMMANDS)))
        return 2
    method, keys = COMMANDS[argv[0]]
    try:
        spec = json.loads(argv[1])
        missing = [k for k in keys if k not in spec]
        if missing:
            raise Failure("the spec lacks %s" % ", ".join(missing))
        host = Host(spec, check=argv[2:] == ["--check"])
        getattr(host, method)()
    except (Failure, ValueError, OSError) as exc:
        sys.stderr.write("lab_host.py %s: %s\n" % (argv[0], exc))
        return 1
    print(json.dumps({"changed": bool(host.actions), "actions": host.actions}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
