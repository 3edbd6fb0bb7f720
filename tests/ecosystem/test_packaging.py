"""The artifact, not the checkout: build the tarball, install it into a clean collections
path, run the collection's playbooks from the installed copy against the awx lab instance,
with the highest and the lowest ansible-core that meta/runtime.yml claims."""

import os
import shutil
import tarfile

import pytest

from ecosystem_helpers import AWX_SSH_KEY, CLEAN_CFG, LOWEST_BIN, VENV_BIN, run

# What a user of the collection does not need, and must not get.
NOT_SHIPPED = ("tests/", "scripts/", "molecule/", "inventory/", "collections/", ".venv", ".matrix", ".ci/", ".git",
               "__pycache__", ".pyc", "execution-environment.yml", "ansible.cfg", ".ansible", "playbooks/vars/",
               ".pytest_cache", ".benchmarks", "bench/", "docs/topology.dot")


def test_the_tarball_holds_what_users_need_and_nothing_else(tarball):
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    for needed in ("MANIFEST.json", "FILES.json", "meta/runtime.yml", "README.md", "requirements.txt",
                   "plugins/modules/apply.py", "plugins/action/plan.py", "plugins/filter/topology_dot.py",
                   "roles/topology/meta/argument_specs.yml", "playbooks/site.yml", "playbooks/graph.yml",
                   "changelogs/changelog.yaml"):
        assert needed in names, needed
    leaked = sorted(n for n in names for bad in NOT_SHIPPED if n.startswith(bad) or bad in n)
    assert leaked == []


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("collections"))
    # Away from the checkout's ansible.cfg, which links the checkout as the collection.
    run(["ansible-galaxy", "collection", "install", tarball, "-p", path], cwd=path,
        env={"ANSIBLE_CONFIG": CLEAN_CFG, "ANSIBLE_COLLECTIONS_PATH": path}).ok()
    assert os.path.isdir(os.path.join(path, "ansible_collections", "crosshost", "ambassador", "plugins"))
    return path


@pytest.mark.parametrize("bin_dir", [VENV_BIN, LOWEST_BIN], ids=["highest", "lowest"])
def test_site_from_the_installed_collection_converges_the_lab(installed, awx_lab, clean_dir, bin_dir):
    inventory = str(clean_dir / "inventory")
    shutil.copytree(awx_lab, inventory)
    # The hosts are reached over SSH with the user's key, as the inventory leaves it to the user.
    env = {"ANSIBLE_COLLECTIONS_PATH": installed, "ANSIBLE_CONFIG": CLEAN_CFG, "ANSIBLE_PRIVATE_KEY_FILE": AWX_SSH_KEY}
    where = run(["ansible-doc", "crosshost.ambassador.apply"], cwd=clean_dir, env=env, bin_dir=bin_dir).ok()
    assert installed in where.output, "ansible-doc did not find the installed copy"
    run(["ansible-playbook", "-i", inventory, "crosshost.ambassador.site"], cwd=clean_dir, env=env, bin_dir=bin_dir).ok()
    again = run(["ansible-playbook", "-i", inventory, "crosshost.ambassador.site"], cwd=clean_dir, env=env,
                bin_dir=bin_dir).ok()
    for host in ("awx1", "awx2", "awx3"):
        assert "%s " % host in again.output
    assert "changed=1" not in again.output and "changed=2" not in again.output
    probe = run(["ansible", "-i", inventory, "awx1", "-m", "crosshost.ambassador.probe", "-a",
                 '{"image": "crosshost-lab/socat:1", '
                 '"service": "redis", "port": 6379, "send": "PING\\r\\n", "expect": "+PONG"}'],
                cwd=clean_dir, env=env, bin_dir=bin_dir).ok()
    assert "+PONG" in probe.output


def test_graph_from_the_installed_collection_draws_what_a_move_recreates(installed, awx_lab, clean_dir):
    inventory = str(clean_dir / "inventory")
    shutil.copytree(awx_lab, inventory)
    # The hosts are reached over SSH with the user's key, as the inventory leaves it to the user.
    env = {"ANSIBLE_COLLECTIONS_PATH": installed, "ANSIBLE_CONFIG": CLEAN_CFG, "ANSIBLE_PRIVATE_KEY_FILE": AWX_SSH_KEY}
    run(["ansible-playbook", "-i", inventory, "crosshost.ambassador.site"], cwd=clean_dir, env=env).ok()
    out = str(clean_dir / "picture")
    run(["ansible-playbook", "-i", inventory, "crosshost.ambassador.graph", "-e", "ambassador_graph_dir=" + out,
         "-e", "ambassador_placement_overrides=redis=awx3"], cwd=clean_dir, env=env).ok()
    with open(os.path.join(out, "topology.dot")) as handle:
        dot = handle.read()
    assert '"awx1/redis_ambassador" [' in dot and "[recreate]" in dot
    assert "[create]" in dot and "[remove]" in dot
    with open(os.path.join(out, "topology.svg")) as handle:
        svg = handle.read()
    assert "<svg" in svg and "redis_ambassador" in svg
    # Drawing changed nothing: the next run still moves redis.
    check = run(["ansible-playbook", "-i", inventory, "crosshost.ambassador.site", "--check",
                 "-e", "ambassador_placement_overrides=redis=awx3"], cwd=clean_dir, env=env).ok()
    assert "recreate container redis_ambassador" in check.output
