"""The repository as an AWX project: the execution environment definition, and a job run
the way AWX runs it (ansible-runner, a private data dir), first the topology, then a move
given only as extra vars, as a survey passes it."""

import json
import os
import re

import docker
import pytest
import yaml

from ecosystem_helpers import ROOT, committed_tree, run


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
    for name in sorted(os.listdir(str(pdd / "artifacts" / ident / "job_events"))):
        with open(str(pdd / "artifacts" / ident / "job_events" / name)) as handle:
            event = json.load(handle)
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("task_action") == "crosshost.ambassador.apply":
            actions[data["host"]] = sorted((a["action"], a["name"]) for a in data["res"]["actions"])
    return actions


def test_an_awx_style_job_converges_then_moves_redis_with_survey_extra_vars_only(private_data_dir):
    runner_job(private_data_dir, "converge", {})
    assert runner_job(private_data_dir, "converge-again", {}) == {"awx1": [], "awx2": [], "awx3": []}

    moved = runner_job(private_data_dir, "move", {"ambassador_placement_overrides": "redis=awx3"})
    assert moved == {
        "awx1": [("recreate", "redis_ambassador")],
        "awx2": [("remove", "redis"), ("remove", "redis_ambassador")],
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
