"""The repository as an AWX project: the execution environment definition, and a job run
the way AWX runs it (ansible-runner, a private data dir), first the topology, then a move
given only as extra vars, as a survey passes it."""

import json
import os
import re
import shutil
import time

import docker
import pytest
import yaml

from ecosystem_helpers import AWX_SSH_KEY, ROOT, committed_tree, run


def test_ansible_builder_creates_the_build_context(tmp_path):
    context = str(tmp_path / "context")
    run(["ansible-builder", "create", "-f", os.path.join(ROOT, "execution-environment.yml"), "-c", context]).ok()
    files = os.listdir(context)
    assert "Containerfile" in files or "Dockerfile" in files
    # The Python requirements are requirements.txt's, without its development ansible-core pin.
    with open(os.path.join(ROOT, "requirements.txt")) as handle:
        runtime = sorted(line for line in handle.read().splitlines() if "==" in line and not line.startswith("ansible-core"))
    with open(os.path.join(context, "_build", "requirements.txt")) as handle:
        assert sorted(line for line in handle.read().splitlines() if line.strip()) == runtime
    with open(os.path.join(context, "_build", "bindep.txt")) as handle:
        assert "graphviz" in handle.read()
    # The base has Python 3.12 or later, and the image gets the newest ansible-core of the support matrix.
    with open(os.path.join(context, [n for n in files if n in ("Containerfile", "Dockerfile")][0])) as handle:
        build = handle.read()
    python = re.search(r'^ARG PYCMD="/usr/bin/python(3\.\d+)"$', build, re.M).group(1)
    assert tuple(int(n) for n in python.split(".")) >= (3, 12)
    assert re.search(r'^ARG EE_BASE_IMAGE="quay.io/centos/centos:stream10"$', build, re.M)
    with open(os.path.join(ROOT, "tests", "matrix", "core-2.21.txt")) as handle:
        newest = re.search(r"^ansible-core==\S+$", handle.read(), re.M).group(0)
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"$', build, re.M).group(1).split()
    assert newest in refs and [r for r in refs if r.startswith("ansible-core")] == [newest]


@pytest.fixture(scope="module")
def private_data_dir(awx_lab, tmp_path_factory):
    """project/ as AWX syncs it (with its collections/requirements.yml installed), inventory/ from the project."""
    pdd = tmp_path_factory.mktemp("awx-job")
    project = committed_tree(pdd / "project")
    collections = str(pdd / "project-collections")
    # What AWX's project update does with collections/requirements.yml, in the project's directory.
    run(["ansible-galaxy", "collection", "install", "-r", "collections/requirements.yml", "-p", collections],
        cwd=project).ok()
    assert os.path.isdir(os.path.join(collections, "ansible_collections", "crosshost", "ambassador", "plugins"))
    os.makedirs(str(pdd / "inventory"))
    for name in ("hosts.yml", "group_vars"):
        src = os.path.join(project, "inventory", "awx", name)
        os.symlink(src, str(pdd / "inventory" / name))
    os.makedirs(str(pdd / "env"))
    # AWX's Machine credential: ansible-runner gives the key to the job through ssh-agent.
    shutil.copyfile(AWX_SSH_KEY, str(pdd / "env" / "ssh_key"))
    with open(str(pdd / "env" / "envvars"), "w") as handle:
        yaml.safe_dump({"ANSIBLE_COLLECTIONS_PATH": collections, "ANSIBLE_NOCOLOR": "1"}, handle)
    return pdd


def runner_job(pdd, ident, extravars):
    with open(str(pdd / "env" / "extravars"), "w") as handle:
        yaml.safe_dump(extravars, handle)
    result = run(["ansible-runner", "run", str(pdd), "-p", "playbooks/site.yml", "--ident", ident])
    with open(str(pdd / "artifacts" / ident / "status")) as handle:
        status = handle.read().strip()
    assert status == "successful" and result.rc == 0, result.output[-6000:]
    actions = {}
    events = os.listdir(str(pdd / "artifacts" / ident / "job_events"))
    for name in sorted(events, key=lambda n: int(n.split("-")[0])):
        with open(str(pdd / "artifacts" / ident / "job_events" / name)) as handle:
            event = json.load(handle)
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("task_action") == "crosshost.ambassador.apply":
            # Every apply step of the host (decide, stop, make, switch, break), together.
            found = actions.setdefault(data["host"], [])
            found.extend((a["action"], a["name"]) for a in data["res"]["actions"])
    return dict((host, sorted(found)) for host, found in actions.items())


def test_an_awx_style_job_converges_then_moves_redis_with_survey_extra_vars_only(private_data_dir):
    runner_job(private_data_dir, "converge", {})
    assert runner_job(private_data_dir, "converge-again", {}) == {"awx1": [], "awx2": [], "awx3": []}

    moved = runner_job(private_data_dir, "move", {"ambassador_placement_overrides": "redis=awx3"})
    assert moved == {
        "awx1": [("recreate", "redis_ambassador")],
        # redis keeps data (a volume): it moves stop-first, stopped on awx2 before awx3 starts it.
        "awx2": [("remove", "redis"), ("remove", "redis_ambassador"), ("stop", "redis")],
        "awx3": [("create", "redis"), ("create", "redis_ambassador")],
    }
    awx1 = docker.DockerClient(base_url="unix:///run/xh-awx/awx1/docker.sock", timeout=60)
    out = awx1.containers.run("crosshost-lab/client:1", ["redis-cli", "-h", "redis", "SET", "moved", "yes"],
                              network="ambassador", remove=True)
    assert out.strip() == b"OK"
    awx3 = docker.DockerClient(base_url="unix:///run/xh-awx/awx3/docker.sock", timeout=60)
    assert awx3.containers.get("redis").exec_run(["redis-cli", "GET", "moved"]).output.strip() == b"yes"

    # Without the survey answer the inventory's placement applies again.
    back = runner_job(private_data_dir, "back", {})
    assert back["awx2"] == [("create", "redis"), ("create", "redis_ambassador")]


def test_a_survey_answer_runs_echo_on_two_hosts_and_awx3_uses_both(private_data_dir):
    runner_job(private_data_dir, "before-replicas", {})
    engines = dict((h, docker.DockerClient(base_url="unix:///run/xh-awx/%s/docker.sock" % h, timeout=60))
                   for h in ("awx1", "awx2", "awx3"))
    kept = engines["awx1"].containers.get("echo").id
    replicas = runner_job(private_data_dir, "replicas", {"ambassador_placement_overrides": "echo=awx1+awx2"})
    # awx2 runs a replica (its own containers use it), awx1 keeps its echo container.
    assert ("create", "echo") in replicas["awx2"] and engines["awx1"].containers.get("echo").id == kept
    # awx3's ambassador balances across both, in turn: with either replica's container stopped, 8 new
    # connections in a row are answered only once its health checks (2 failed, 1 s apart) took it out.
    script = ("ok=0; end=$(( $(cut -d. -f1 /proc/uptime) + 20 )); while [ $ok -lt 8 ]; do "
              "[ $(cut -d. -f1 /proc/uptime) -lt $end ] || exit 1; "
              "if echo hi | socat -t 2 - TCP:echo:7777,connect-timeout=1 | grep -q hi; then ok=$((ok + 1)); "
              "else ok=0; fi; done; echo answered")
    for down in ("awx1", "awx2"):
        engines[down].containers.get("echo").stop(timeout=1)
        try:
            out = engines["awx3"].containers.run("crosshost-lab/client:1", ["sh", "-c", script],
                                                 network="ambassador", remove=True)
        finally:
            engines[down].containers.get("echo").start()
        assert out.strip() == b"answered", down
        time.sleep(3)  # the restarted replica passes its 2 checks before the other one is stopped
    # Without the survey answer echo is on awx1 alone again, and nothing else is left.
    back = runner_job(private_data_dir, "replicas-back", {})
    assert ("remove", "echo") in back["awx2"] and "echo" not in [c.name for c in engines["awx2"].containers.list()]


def test_a_sliced_awx_job_is_refused_before_any_change(private_data_dir, tmp_path):
    """As AWX runs slice 1 of 2: its share of the inventory (hosts sorted by name, every other one)
    and the variables AWX passes to a job of a sliced template, which runs as a workflow job named
    after the template. It must fail before touching any engine, saying it is a slice."""
    runner_job(private_data_dir, "before-slice", {})
    engines = dict((h, docker.DockerClient(base_url="unix:///run/xh-awx/%s/docker.sock" % h, timeout=60))
                   for h in ("awx1", "awx2", "awx3"))

    def snapshot():
        return dict((h, sorted((c.name, c.id, c.status) for c in e.containers.list(all=True)))
                    for h, e in engines.items())
    before = snapshot()
    with open(os.path.join(str(private_data_dir), "inventory", "hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)
    hosts = inventory["all"]["children"]["docker_hosts"]["hosts"]
    share = dict((name, hosts[name]) for name in sorted(hosts)[0::2])
    inventory["all"]["children"]["docker_hosts"]["hosts"] = share
    slice_inventory = tmp_path / "slice.yml"
    slice_inventory.write_text(yaml.safe_dump(inventory))
    with open(str(private_data_dir / "env" / "extravars"), "w") as handle:
        yaml.safe_dump({"awx_job_id": 42, "awx_job_template_name": "site", "awx_workflow_job_id": 41,
                        "awx_workflow_job_name": "site", "tower_job_id": 42, "tower_workflow_job_id": 41,
                        "tower_workflow_job_name": "site", "tower_job_template_name": "site"}, handle)
    group_vars = os.path.join(str(private_data_dir), "inventory", "group_vars")
    os.symlink(os.path.realpath(group_vars), str(tmp_path / "group_vars"))
    result = run(["ansible-runner", "run", str(private_data_dir), "-p", "playbooks/site.yml", "--ident", "slice",
                  "--inventory", str(slice_inventory)])
    with open(str(private_data_dir / "artifacts" / "slice" / "status")) as handle:
        assert handle.read().strip() == "failed", result.output[-4000:]
    assert "this job is a slice of job template 'site'" in result.output
    assert "job_slice_count 1" in result.output
    assert snapshot() == before
