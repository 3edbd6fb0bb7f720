"""The lab (real Docker engines in network namespaces) and helpers to run playbooks against it.

The lab is brought up once per test session with playbooks/lab.yml (idempotent:
a no-op when it already runs). Each test converges the topology it needs first,
so tests do not depend on each other's leftovers.
"""

import json
import os
import shutil
import subprocess
import time

import docker
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
LAB_INVENTORY = os.environ.get("LAB_INVENTORY", "/var/lib/crosshost-lab/inventory.yml")
CALLBACKS = os.path.join(ROOT, "tests", "integration", "callback_plugins")
OWNER_LABEL = "crosshost.ambassador.managed"


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

    def actions(self):
        """Host -> sorted (action, name) pairs reported by crosshost.ambassador.apply."""
        return dict((host, sorted((a["action"], a["name"])
                                  for a in r["result"].get("actions", [])))
                    for host, r in self.results_of("crosshost.ambassador.apply").items())


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
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=900)
    record = {}
    if os.path.exists(record_file):
        with open(record_file) as handle:
            record = json.load(handle)
    return Run(proc.returncode, proc.stdout, record)


class Topology(object):
    """A copy of inventory/lab that a test may edit, the way a user edits their inventory."""

    def __init__(self, path):
        self.path = str(path)
        shutil.copytree(os.path.join(ROOT, "inventory", "lab"), self.path)
        with open(self._all) as handle:
            self.vars = yaml.safe_load(handle)

    @property
    def _all(self):
        return os.path.join(self.path, "group_vars", "all.yml")

    @property
    def services(self):
        return self.vars["ambassador_services"]

    def save(self):
        with open(self._all, "w") as handle:
            yaml.safe_dump(self.vars, handle, default_flow_style=False)
        return self

    def host_vars(self, host, **values):
        path = os.path.join(self.path, "host_vars", "%s.yml" % host)
        current = {}
        if os.path.exists(path):
            with open(path) as handle:
                current = yaml.safe_load(handle) or {}
        current.update(values)
        with open(path, "w") as handle:
            yaml.safe_dump(current, handle, default_flow_style=False)


class Lab(object):
    def __init__(self, inventory_path, tmpdir):
        with open(inventory_path) as handle:
            inventory = yaml.safe_load(handle)
        lab = inventory["all"]["children"]["lab"]
        self.hosts = lab["hosts"]
        self.vars = lab["vars"]
        self.tmpdir = tmpdir
        self._clients = {}

    def client(self, host):
        if host not in self._clients:
            self._clients[host] = docker.DockerClient(base_url=self.hosts[host]["ambassador_docker_host"], timeout=60)
        return self._clients[host]

    def site(self, topology, *args):
        return ansible_playbook(["-i", LAB_INVENTORY, "-i", topology.path, "playbooks/site.yml"] + list(args),
                                self.tmpdir)

    def snapshot(self):
        """Host -> {container name: (id, status)}, plus networks and volumes, to prove what changed."""
        snap = {}
        for host in self.hosts:
            client = self.client(host)
            snap[host] = {
                "containers": dict((c.name, (c.id, c.status)) for c in client.containers.list(all=True)),
                "networks": sorted(n.name for n in client.networks.list()),
                "volumes": sorted(v.name for v in client.volumes.list()),
                "images": sorted(i.id for i in client.images.list()),
            }
        return snap

    def owned(self, host):
        return sorted(c.name for c in self.client(host).containers.list(all=True, filters={"label": OWNER_LABEL}))

    def start_consumer(self, host, name, network="ambassador"):
        """An application container of the user's: not the collection's, never touched by it."""
        client = self.client(host)
        for old in client.containers.list(all=True, filters={"name": "^%s$" % name}):
            old.remove(force=True)
        return client.containers.run(self.vars["lab_client_image"], ["sleep", "100000"], name=name, detach=True,
                                     network=network, labels={"test": "consumer"})


def exec_ok(container, cmd, attempts=10, expect=None):
    """Run cmd in container until it succeeds (bounded); return its output."""
    output = b""
    for _ in range(attempts):
        code, output = container.exec_run(cmd)
        text = output.decode("utf-8", "replace").strip()
        if code == 0 and (expect is None or text == expect):
            return text
        time.sleep(0.5)
    raise AssertionError("%s in %s failed after %d attempts: %s" % (cmd, container.name, attempts, output))


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    tmpdir = tmp_path_factory.mktemp("runs")
    up = ansible_playbook(["playbooks/lab.yml"], tmpdir)
    assert up.rc == 0, up.output[-4000:]
    return Lab(LAB_INVENTORY, tmpdir)


@pytest.fixture
def topology(tmp_path):
    return Topology(tmp_path / "topology")
