"""The lab (real Docker engines in network namespaces) and helpers to run playbooks against it.

The lab is brought up once per test session with playbooks/lab.yml (idempotent:
a no-op when it already runs). Each test converges the topology it needs first,
so tests do not depend on each other's leftovers.
"""

import os
import shutil
import subprocess

import docker
import pytest
import yaml

# The runner and the waits that bench/ uses too; the tests import them from here.
from labkit import (  # noqa: F401 pylint: disable=unused-import
    ON_THE_CONTROLLER, ROOT, VENV_BIN, ansible_playbook, exec_ok, processes_naming, stop_dockerd, veth_of, wait_for)

# scripts/lab-instance-tests runs copies of these tests (host names of another lab instance) from
# elsewhere: LAB_ROOT (read by labkit) names the checkout, LAB_VARS the instance's vars file for
# playbooks/lab.yml, LAB_TOPOLOGY the copy of inventory/lab with its host names.
LAB_INVENTORY = os.environ.get("LAB_INVENTORY", "/var/lib/crosshost-lab/inventory.yml")
LAB_VARS = os.environ.get("LAB_VARS")
LAB_UP = ["playbooks/lab.yml"] + (["-e", "@" + LAB_VARS] if LAB_VARS else [])
LAB_TOPOLOGY = os.environ.get("LAB_TOPOLOGY") or os.path.join(ROOT, "inventory", "lab")
OWNER_LABEL = "crosshost.ambassador.managed"


class Topology(object):
    """A copy of inventory/lab that a test may edit, the way a user edits their inventory."""

    def __init__(self, path):
        self.path = str(path)
        shutil.copytree(LAB_TOPOLOGY, self.path)
        with open(self._all) as handle:
            self.vars = yaml.safe_load(handle)

    @property
    def _all(self):
        return os.path.join(self.path, "group_vars", "all.yml")

    @property
    def services(self):
        return self.vars["ambassador_services"]

    def set_services(self, services):
        self.vars["ambassador_services"] = services
        return self.save()

    def drop(self, service):
        """Take a service out of the topology, and out of every host's ambassador_consumes, as a user would."""
        spec = self.services.pop(service)
        consumers = []
        host_vars = os.path.join(self.path, "host_vars")
        for name in sorted(os.listdir(host_vars)) if os.path.isdir(host_vars) else []:
            host = name[:-len(".yml")]
            consumes = self._read_host_vars(host).get("ambassador_consumes") or []
            if service in consumes:
                consumers.append(host)
                self.host_vars(host, ambassador_consumes=[s for s in consumes if s != service])
        self.save()
        return spec, consumers

    def restore(self, service, dropped):
        """Undo drop()."""
        spec, consumers = dropped
        self.services[service] = spec
        for host in consumers:
            self.host_vars(host, ambassador_consumes=self._read_host_vars(host).get("ambassador_consumes", []) + [service])
        return self.save()

    def _read_host_vars(self, host):
        path = os.path.join(self.path, "host_vars", "%s.yml" % host)
        if not os.path.exists(path):
            return {}
        with open(path) as handle:
            return yaml.safe_load(handle) or {}

    def save(self):
        with open(self._all, "w") as handle:
            yaml.safe_dump(self.vars, handle, default_flow_style=False)
        return self

    def host_vars(self, host, **values):
        path = os.path.join(self.path, "host_vars", "%s.yml" % host)
        current = self._read_host_vars(host)
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
        # The lab writes its inventory into its state directory, which holds each host's own /etc paths.
        self.state_dir = os.path.dirname(os.path.abspath(inventory_path))

    def host_etc(self, host, path):
        """The machine-side path of a file under a lab host's own /etc/crosshost-ambassador (roles/lab README)."""
        relative = os.path.relpath(path, "/etc/crosshost-ambassador")
        return os.path.join(self.state_dir, host, "etc", "crosshost-ambassador", relative)

    def socket(self, host):
        """The machine-side path of a lab host's engine socket (the host itself sees it as /var/run/docker.sock)."""
        return self.hosts[host]["lab_docker_socket"]

    def engine_url(self, host):
        """The URL the collection reaches a lab host's engine with, on that host (and names in its messages)."""
        return self.hosts[host].get("ambassador_docker_host", "unix:///var/run/docker.sock")

    def client(self, host):
        """A client of a lab host's engine, from this machine (to look inside, not how the collection reaches it)."""
        if host not in self._clients:
            self._clients[host] = docker.DockerClient(base_url="unix://" + self.socket(host), timeout=60)
        return self._clients[host]

    def playbook(self, topology, playbook, *args):
        return ansible_playbook(["-i", LAB_INVENTORY, "-i", topology.path, playbook] + list(args), self.tmpdir)

    def site(self, topology, *args):
        return self.playbook(topology, "playbooks/site.yml", *args)

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

    def up(self):
        """(Re)start whatever part of the lab is down: playbooks/lab.yml is idempotent."""
        run = ansible_playbook(LAB_UP, self.tmpdir)
        assert run.rc == 0, run.output[-4000:]
        self._clients = {}

    def stop_engine(self, host, timeout=60):
        """Stop a lab host's dockerd, as an operator or a crash would; lab.up() brings it back."""
        stop_dockerd(self.run_dir(host), timeout)
        self._clients.pop(host, None)

    def run_dir(self, host):
        """The host's run directory (socket, pidfile): <lab_run_dir>/<host>, where its machine-side socket is."""
        return os.path.dirname(self.socket(host))

    def in_namespace(self, host, argv):
        """Start a process inside a lab host's network namespace (the caller stops it)."""
        return subprocess.Popen(["nsenter", "--net=/run/netns/%s" % host] + list(argv),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def address(self, host):
        return self.hosts[host]["ambassador_advertise_address"]

    def start_consumer(self, host, name, network="ambassador"):
        """An application container of the user's: not the collection's, never touched by it."""
        client = self.client(host)
        for old in client.containers.list(all=True, filters={"name": "^%s$" % name}):
            old.remove(force=True)
        return client.containers.run(self.vars["lab_client_image"], ["sleep", "100000"], name=name, detach=True,
                                     network=network, labels={"test": "consumer"})


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    tmpdir = tmp_path_factory.mktemp("runs")
    up = ansible_playbook(LAB_UP, tmpdir)
    assert up.rc == 0, up.output[-4000:]
    return Lab(LAB_INVENTORY, tmpdir)


@pytest.fixture
def topology(tmp_path):
    return Topology(tmp_path / "topology")


def converge(lab, topology, *args):
    """Run site.yml and insist that it succeeds."""
    run = lab.site(topology, *args)
    assert run.rc == 0, run.output[-6000:]
    return run


@pytest.fixture
def consumer(lab, topology):
    """The default topology converged and a user's redis-cli container on host1."""
    converge(lab, topology)
    container = lab.start_consumer("host1", "consumer")
    yield container
    container.remove(force=True)
