"""The lab instance "eng" (playbooks/vars/lab_eng.yml): eng1..eng3 on xheng0, 10.77.14.0/24.

Tests of the lab itself and of the ways to reach an engine bring it up and tear it down
themselves (module-scoped fixtures), apart from the default lab the other tests share.
"""

import os
import subprocess
import time

import pytest
import yaml

import labkit
from conftest import ROOT, ansible_playbook

VARS_FILE = os.path.join(ROOT, "playbooks", "vars", "lab_eng.yml")
with open(VARS_FILE) as _handle:
    VARS = yaml.safe_load(_handle)
HOSTS = VARS["lab_hosts"]
SUBNET = VARS["lab_subnet"]
STATE_DIR = VARS["lab_state_dir"]
RUN_DIR = VARS["lab_run_dir"]
INVENTORY = os.path.join(STATE_DIR, "inventory.yml")


def lab_playbook(tmpdir, *extra):
    """playbooks/lab.yml on this instance; returns (run, seconds)."""
    started = time.time()
    run = ansible_playbook(["playbooks/lab.yml", "-e", "@" + VARS_FILE] + list(extra), tmpdir)
    return run, time.time() - started


def up(tmpdir, *extra):
    run, seconds = lab_playbook(tmpdir, *extra)
    assert run.rc == 0, run.output[-4000:]
    return run, seconds


def down(tmpdir):
    run, seconds = lab_playbook(tmpdir, "-e", "lab_state=absent")
    assert run.rc == 0, run.output[-4000:]
    return run, seconds


@pytest.fixture(scope="module")
def eng(tmp_path_factory):
    """The instance, up for one test module (import this fixture there) and torn down after it."""
    tmpdir = tmp_path_factory.mktemp("eng-runs")
    up(tmpdir)
    yield tmpdir
    down(tmpdir)


def socket_url(host):
    return "unix://%s/%s/docker.sock" % (RUN_DIR, host)


def address(host):
    return "%s.%d" % (SUBNET.rsplit(".", 1)[0], 10 + HOSTS.index(host) + 1)


def in_ns(host, argv, **kwargs):
    return subprocess.run(["nsenter", "--net=/run/netns/%s" % host] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False, **kwargs)


def leftovers():
    """Everything of this instance that is still on the machine, by kind (empty lists when none)."""
    return labkit.leftovers(VARS)
