"""The apply module end to end (argument parsing, the decision, phases, dispatch, undo, result)
against a small in-memory Docker engine: what it asks the engine, and what it reports."""

import json
import signal

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import REPLICAS_FILE
from ansible_collections.crosshost.ambassador.plugins.module_utils._engine import EngineError
from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import plan_topology
from ansible_collections.crosshost.ambassador.plugins.module_utils._reconcile import OWNER_LABEL, labels_for
from ansible_collections.crosshost.ambassador.plugins.modules import apply

SERVICES = {"redis": {"host": "h2", "port": 6379, "image": "redis:7", "move": "make_before_break"}}
HOSTS = {"h1": {"advertise_address": "10.0.0.1", "consumes": ["redis"], "image": "socat:1"},
         "h2": {"advertise_address": "10.0.0.2", "image": "socat:1"}}


class MemoryEngine(object):
    """Containers, networks and images in memory; ``calls`` records every change, in order."""

    url = "unix:///memory/docker.sock"

    def __init__(self, images=("socat:1", "redis:7")):
        self.by_id = {}
        self.networks = set()
        self.images = set(images)
        self.calls = []
        self.fail_create = set()
        self.next_id = 0
        self.stuck = False

    def _named(self, name):
        return [c for c in self.by_id.values() if c["name"] == name]

    def containers(self):
        return [dict((k, v) for k, v in c.items() if k != "stored_files") for c in self.by_id.values()]

    def network(self, name):
        return {"Name": name} if name in self.networks else None

    def create_network(self, name):
        self.calls.append(("create_network", name))
        self.networks.add(name)

    def has_image(self, ref):
        return ref in self.images

    def version(self):
        return {"Version": "20.10.24", "ApiVersion": "1.41"}

    def pull(self, ref):
        self.calls.append(("pull", ref))
        self.images.add(ref)

    def create(self, spec, files=None):
        self.calls.append(("create", spec["name"]))
        if spec["name"] in self.fail_create or self._named(spec["name"]):
            raise EngineError("creating container %s failed" % spec["name"])
        self.next_id += 1
        cid = "%064d" % self.next_id
        self.by_id[cid] = {"id": cid, "name": spec["name"], "labels": labels_for(spec), "state": "running",
                           "ports": [], "stored_files": dict(files or {})}
        return cid

    def logs_tail(self, cid, lines):
        """A balancing ambassador's log: it has adopted the list in its file, unless it is ``stuck``."""
        text = None if self.stuck else self.by_id[cid]["stored_files"].get(REPLICAS_FILE)
        return "crosshost.ambassador: replicas: %s\n" % " ".join((text or "").split()[:-1])

    def put_files(self, cid, name, files):
        self.calls.append(("put_files", name))
        self.by_id[cid]["stored_files"].update(files)

    def read_files(self, cid, name, paths):
        return dict((path, self.by_id[cid]["stored_files"].get(path)) for path in paths)

    def start(self, cid, name):
        self.calls.append(("start", name))
        self.by_id[cid]["state"] = "running"

    def stop(self, cid, name, timeout):
        self.calls.append(("stop", name))
        self.by_id[cid]["state"] = "exited"

    def remove(self, cid, name, stop_timeout=None):
        self.calls.append(("remove", name))
        self.by_id.pop(cid, None)

    def rename(self, cid, name, new_name):
        self.calls.append(("rename", name, new_name))
        self.by_id[cid]["name"] = new_name

    def replace(self, cid, spec, method, stop_timeout=None, running=False, restart_policy=None, files=None):
        self.calls.append(("replace", spec["name"], method, running, restart_policy))
        self.remove(cid, spec["name"])
        return self.create(spec, files)

    def inspect(self, name):
        for c in self.by_id.values():
            if name in (c["id"], c["name"]):
                return {"Id": c["id"], "State": {"Running": c["state"] == "running", "Status": c["state"]}}
        return None

    def exec_status(self, cid, name, argv):
        return 0


@pytest.fixture
def engine(monkeypatch):
    memory = MemoryEngine()
    monkeypatch.setattr(apply, "connect", lambda settings, timeout=60: memory)
    handlers = dict((s, signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    yield memory
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def run_apply(capsys, **args):
    """Run the module as Ansible would; return (exit code, its JSON result)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as ended:
            apply.main()
    return ended.value.code, json.loads(capsys.readouterr().out)


def plans(services=None):
    return plan_topology(SERVICES if services is None else services, HOSTS)


def test_a_new_host_gets_its_network_images_and_containers_and_a_second_run_changes_nothing(engine, capsys):
    engine.images.discard("redis:7")
    plan = plans()["h2"]
    code, checked = run_apply(capsys, plan=plan, _ansible_check_mode=True)
    assert code == 0 and checked["changed"] and engine.calls == [] and engine.by_id == {}
    code, result = run_apply(capsys, plan=plan)
    assert code == 0 and result["changed"]
    assert [(a["action"], a["kind"], a["name"], a["phase"]) for a in result["actions"]] == [
        ("create", "network", "ambassador", "make"), ("pull", "image", "redis:7", "make"),
        ("create", "container", "redis", "make"), ("create", "container", "redis_ambassador", "make")]
    assert [a["action"] for a in checked["actions"]] == [a["action"] for a in result["actions"]]
    assert result["network"] == {"name": "ambassador", "created": True}
    assert sorted(c["name"] for c in engine.by_id.values()) == ["redis", "redis_ambassador"]
    code, again = run_apply(capsys, plan=plan)
    assert code == 0 and not again["changed"] and again["unchanged"] == ["redis", "redis_ambassador"]


def test_phases_are_taken_one_by_one_and_a_consumer_side_ambassador_is_replaced_side_by_side(engine, capsys):
    run_apply(capsys, plan=plans()["h1"])
    moved = plans(dict(SERVICES, redis=dict(SERVICES["redis"], port=6380)))["h1"]
    engine.calls = []
    code, made = run_apply(capsys, plan=moved, phases=["make"])
    assert code == 0 and not made["changed"] and made["pending"] == {"stop": 0, "switch": 1, "break": 0}
    assert made["pending_services"]["switch"] == ["redis"]
    code, switched = run_apply(capsys, plan=moved, phases=["switch"])
    assert code == 0 and [(a["action"], a["method"]) for a in switched["actions"]] == [("recreate", "side_by_side")]
    assert engine.calls[0] == ("replace", "redis_ambassador", "side_by_side", True, "unless-stopped")


def test_held_services_are_reported_and_left_alone(engine, capsys):
    code, result = run_apply(capsys, plan=plans()["h2"], hold=["redis"])
    assert code == 0 and [a["name"] for a in result["held"]] == ["redis", "redis_ambassador"]
    # The network is made; an image only a held step needs is not pulled.
    assert engine.calls == [("create_network", "ambassador")]


def test_a_failed_step_undoes_what_it_made_on_the_host(engine, capsys):
    engine.fail_create.add("redis_ambassador")
    code, result = run_apply(capsys, plan=plans()["h2"])
    assert code == 1 and result["failed"]
    assert "creating container redis_ambassador failed" in result["msg"] and "removed redis" in result["msg"]
    assert [c for c in engine.by_id.values() if c["labels"].get(OWNER_LABEL)] == []


def test_a_stop_first_service_leaving_the_host_is_stopped_in_its_own_phase(engine, capsys):
    services = {"redis": dict(SERVICES["redis"], volumes=["redis-data:/data"], move="stop_first")}
    run_apply(capsys, plan=plans(services)["h2"])
    gone = plans(dict(services, redis=dict(services["redis"], host="h1")))["h2"]
    code, stopped = run_apply(capsys, plan=gone, phases=["stop"], stop_first=["redis"])
    assert code == 0 and [(a["action"], a["name"]) for a in stopped["actions"]] == [("stop", "redis")]
    code, broken = run_apply(capsys, plan=gone, phases=["break"], stop_first=["redis"])
    assert code == 0 and [(a["action"], a["name"]) for a in broken["actions"]] == [
        ("remove", "redis"), ("remove", "redis_ambassador")]
    assert broken["volumes_left"] == {"redis": ["redis-data"]}


def test_a_new_replica_list_is_put_in_the_running_ambassador_and_a_failed_step_puts_the_old_one_back(engine, capsys):
    replicated = {"api": {"hosts": ["h2", "h3"], "port": 7000, "image": "api:1"}}
    hosts = dict(HOSTS, h3={"advertise_address": "10.0.0.3", "image": "socat:1"})
    for settings in hosts.values():
        settings["kernel_image"] = "socat:1"
    hosts["h1"] = dict(hosts["h1"], consumes=["api"])
    two = plan_topology(replicated, hosts)["h1"]
    three = plan_topology(dict(api=dict(replicated["api"], hosts=["h2", "h3", "h2b"])),
                          dict(hosts, h2b={"advertise_address": "10.0.0.4", "image": "socat:1",
                                           "kernel_image": "socat:1"}))["h1"]
    run_apply(capsys, plan=two)
    kept = engine._named("api_ambassador")[0]
    assert kept["stored_files"] == two["containers"][0]["files"]
    engine.calls = []
    code, checked = run_apply(capsys, plan=three, _ansible_check_mode=True, _ansible_diff=True)
    assert code == 0 and engine.calls == [] and [a["action"] for a in checked["actions"]] == ["deliver"]
    assert checked["diff"]["after"]["files"]["api_ambassador"] == three["containers"][0]["files"]
    code, result = run_apply(capsys, plan=three)
    assert code == 0 and engine.calls == [("put_files", "api_ambassador")]
    assert [(a["action"], a["files"]) for a in result["actions"]] == [("deliver", three["containers"][0]["files"])]
    assert engine._named("api_ambassador") == [kept] and kept["stored_files"] == three["containers"][0]["files"]
    assert run_apply(capsys, plan=three)[1]["changed"] is False
    # Back to two replicas, with a container that cannot be made after the delivery: the old list is put back.
    broken = dict(two, containers=two["containers"] + [dict(two["containers"][0], name="late", files={})])
    engine.fail_create.add("late")
    code, failed = run_apply(capsys, plan=broken)
    assert code == 1 and "has its files back as they were" in failed["msg"]
    assert kept["stored_files"] == three["containers"][0]["files"]
    # An ambassador that does not take its new list stops the run (before any replica is removed).
    engine.stuck = True
    code, failed = run_apply(capsys, plan=two, ready_timeout=1)
    assert code == 1 and "api_ambassador did not take its new list in /etc/crosshost-ambassador-replicas (10.0.0.2, 10.0.0.3) within 1 s" in failed["msg"]
