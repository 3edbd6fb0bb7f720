"""Running ansible-playbook against a lab, waiting on what it made, and seeing what a lab instance sends out
or leaves behind: shared by the integration tests (through their conftest.py), the ecosystem tests
(test_podman.py) and the benchmark (bench/run.py). No pytest here."""

import glob
import hashlib
import json
import os
import signal
import subprocess
import time

# LAB_ROOT: the checkout, when scripts/lab-instance-tests runs copies of the tests from elsewhere.
ROOT = os.environ.get("LAB_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
CALLBACKS = os.path.join(ROOT, "tests", "integration", "callback_plugins")
# Host variables that run a lab host's modules on the controller (which sees every engine's socket,
# and the job's environment) instead of on the host over SSH.
ON_THE_CONTROLLER = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}


def veth_of(host):
    """The bridge side of a lab host's veth pair, named as the lab role names it (roles/lab/vars/main.yml)."""
    if len(host) <= 11:
        return "xhv-" + host
    return "xhv-" + host[:4] + hashlib.sha1(host.encode("utf-8")).hexdigest()[:7]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_dockerd(run_dir, timeout=60):
    """Stop the dockerd whose pidfile is in ``run_dir`` (a lab host's run directory), as an operator or a crash
    would, and wait until it is gone; the lab role brings it back."""
    with open(os.path.join(run_dir, "docker.pid")) as handle:
        pid = int(handle.read().strip())
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), "dockerd (pid %d) to stop" % pid, timeout)


class Run(object):
    """One ansible-playbook run: exit code, output, and what the record_results callback saw."""

    def __init__(self, rc, output, record):
        self.rc = rc
        self.output = output
        self.results = record.get("results", [])
        self.stats = record.get("stats", {})

    def changed(self):
        return dict((host, s["changed"]) for host, s in self.stats.items())

    def failed_hosts(self):
        return sorted(h for h, s in self.stats.items() if s["failures"] or s["unreachable"])

    def results_of(self, action):
        """Host -> the last result of `action` that ran (a phase skipped for lack of work is no result)."""
        return dict((r["host"], r) for r in self.results if r["action"] == action and r["status"] != "skipped")

    def facts(self, host):
        """Every fact that set_fact tasks set on host, merged in order."""
        found = {}
        for r in self.results:
            if r["host"] == host and r["action"] == "ansible.builtin.set_fact" and r["status"] == "ok":
                found.update(r["result"].get("ansible_facts", {}))
        return found

    def steps(self):
        """Host -> [(task name, sorted (action, name) pairs) of each crosshost.ambassador.apply step that ran], in order."""
        found = {}
        for r in self.results:
            if r["action"] == "crosshost.ambassador.apply" and r["status"] != "skipped":
                found.setdefault(r["host"], []).append(
                    (r["task"].split(" : ")[-1], sorted((a["action"], a["name"]) for a in r["result"].get("actions", []))))
        return found

    def actions(self):
        """Host -> sorted (action, name) pairs reported by every crosshost.ambassador.apply step that ran."""
        return dict((host, sorted(pair for _task, pairs in steps for pair in pairs)) for host, steps in self.steps().items())


def ansible_playbook(args, tmpdir):
    record_file = os.path.join(str(tmpdir), "record-%d.json" % time.time_ns())
    env = dict(os.environ)
    env.update({
        "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
        "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"),
        "ANSIBLE_CALLBACK_PLUGINS": CALLBACKS,
        "ANSIBLE_CALLBACKS_ENABLED": "record_results",
        "RECORD_RESULTS_FILE": record_file,
        "ANSIBLE_NOCOLOR": "1",
    })
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook")] + list(args), cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=900,
                          check=False)
    record = {}
    if os.path.exists(record_file):
        with open(record_file) as handle:
            record = json.load(handle)
    return Run(proc.returncode, proc.stdout, record)


def wait_for(predicate, what, timeout=30):
    """Poll predicate until it is true (bounded); fail naming what was awaited."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))


def exec_ok(container, cmd, attempts=10, expect=None):
    """Run cmd in container until it succeeds (bounded); return its output."""
    output = b""
    for _attempt in range(attempts):
        code, output = container.exec_run(cmd)
        text = output.decode("utf-8", "replace").strip()
        if code == 0 and (expect is None or text == expect):
            return text
        time.sleep(0.5)
    raise AssertionError("%s in %s failed after %d attempts: %s" % (cmd, container.name, attempts, output))


def processes_naming(*dirs):
    """Command lines (200 characters) of the processes whose arguments name a path below one of dirs."""
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as handle:
                text = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if any(d + "/" in text for d in dirs):
            found.append("%s: %s" % (cmdline.split("/")[2], text[:200]))
    return found


def leftovers(lab_vars):
    """Everything of a lab instance that is still on the machine, by kind (empty lists when none).

    lab_vars: the values of the instance's vars file (lab_hosts, lab_bridge, lab_state_dir, lab_run_dir).
    Mounts: those of this machine's mount namespace on or below the instance's directories."""
    hosts, bridge = lab_vars["lab_hosts"], lab_vars["lab_bridge"]
    state_dir, run_dir = lab_vars["lab_state_dir"], lab_vars["lab_run_dir"]
    netns = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], stdout=subprocess.PIPE, universal_newlines=True,
                           check=True).stdout
    with open("/proc/self/mountinfo") as handle:
        mounts = [point for point in (line.split()[4] for line in handle)
                  if any(point == d or point.startswith(d + "/") for d in (run_dir, state_dir))]
    return {
        "namespaces": [line.split()[0] for line in netns.splitlines() if line.split() and line.split()[0] in hosts],
        "links": [line.split(":")[1].strip() for line in links.splitlines()
                  if line.split(":")[1].strip().split("@")[0] in [bridge] + [veth_of(h) for h in hosts]],
        "forward rules": [line for line in rules.splitlines() if bridge in line],
        "processes": processes_naming(run_dir, state_dir),
        "mounts": mounts,
        "files": [p for p in (state_dir, run_dir) + tuple("/run/netns/%s" % h for h in hosts) if os.path.lexists(p)],
        "cgroups": [p for h in hosts for p in glob.glob("/sys/fs/cgroup/**/crosshost-lab/%s" % h, recursive=True)],
    }


def capture_leaving(interface, subnet, seconds_max=60):
    """tcpdump on the machine side of a lab host's link, of IPv4 not bound for subnet and any routable IPv6.

    Returns once the capture runs; stop_capture() ends it."""
    bpf = "(ip and not dst net %s) or (ip6 and not dst net fe80::/10 and not dst net ff00::/8)" % subnet
    proc = subprocess.Popen(["timeout", str(seconds_max), "tcpdump", "-n", "-l", "-i", interface, bpf],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    # tcpdump says "listening on ..." on stderr once the capture runs.
    seen = []
    while not seen or "listening on" not in seen[-1]:
        seen.append(proc.stderr.readline())
        assert seen[-1], "tcpdump did not start: %s" % "".join(seen)
    return proc


def stop_capture(proc):
    """(packets printed, tcpdump's summary) of a capture_leaving() capture."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    return out, err
