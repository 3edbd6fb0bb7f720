"""Fixtures for the ecosystem tests (helpers: ecosystem_helpers.py)."""

import os

import pytest

from ecosystem_helpers import AWX_LAB_VARS, ROOT, committed_tree, run


@pytest.fixture(scope="session")
def awx_lab():
    """The lab instance "awx" (awx1..awx3 on 10.77.12.0/24), up for the session, torn down after."""
    up = run(["ansible-playbook", "playbooks/lab.yml", "-e", "@" + AWX_LAB_VARS])
    up.ok()
    yield os.path.join(ROOT, "inventory", "awx")
    down = run(["ansible-playbook", "playbooks/lab.yml", "-e", "@" + AWX_LAB_VARS, "-e", "lab_state=absent"])
    down.ok()


@pytest.fixture(scope="session")
def tarball(tmp_path_factory):
    """The collection artifact, built by ansible-galaxy from the committed files."""
    src = committed_tree(tmp_path_factory.mktemp("build") / "src")
    out = str(tmp_path_factory.mktemp("dist"))
    run(["ansible-galaxy", "collection", "build", "--output-path", out], cwd=src).ok()
    (name,) = [n for n in os.listdir(out) if n.endswith(".tar.gz")]
    return os.path.join(out, name)


@pytest.fixture
def clean_dir(tmp_path):
    """A working directory with no ansible.cfg, so only what a test passes applies."""
    path = tmp_path / "work"
    path.mkdir()
    return path
