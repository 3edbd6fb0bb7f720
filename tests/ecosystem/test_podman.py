"""Podman: the default topology's integration tests on the lab instance "pod", its isolation, its tear-down.

The instance (playbooks/vars/lab_pod.yml) runs every lab host on Debian 12's Podman 4.3 through its
Docker-compatible socket; it is brought up for this module and torn down after it.
scripts/lab-instance-tests runs tests/integration/test_topology.py and test_dataplanes.py on it: every
test those files hold must pass, none skipped. A container's lookup of a name outside the lab fails at
once and sends nothing out, as on the Docker lab hosts (tests/integration/test_lab_isolation.py).
lab_state=absent leaves nothing of the instance on the machine (labkit.leftovers, the check of the
"eng" instance's tear-down).
"""

import os
import re
import sys
import time
import xml.etree.ElementTree as ET

import docker
import pytest
import yaml

from ecosystem_helpers import ROOT, run

# labkit: shared with the integration tests and bench/.
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import labkit  # noqa: E402 pylint: disable=wrong-import-position

POD_VARS = os.path.join(ROOT, "playbooks", "vars", "lab_pod.yml")
with open(POD_VARS) as _handle:
    POD = yaml.safe_load(_handle)
LAB_INSTANCE_TESTS = os.path.join(ROOT, "scripts", "lab-instance-tests")
FILES = ("tests/integration/test_topology.py", "tests/integration/test_dataplanes.py")
# The two files took 13 and 36 minutes (with the bring-up) on 2 shared cores at a load of 9 and 24: generous.
SUITE_TIMEOUT = 5400
# A name outside the lab, which only the machine's resolver could answer.
OUTSIDE_NAME = "registry-1.docker.io"


def lab(*extra):
    """playbooks/lab.yml on the instance; returns (result, seconds)."""
    started = time.time()
    result = run(["ansible-playbook", "playbooks/lab.yml", "-e", "@" + POD_VARS] + list(extra))
    return result.ok(), time.time() - started


@pytest.fixture(scope="module")
def pod():
    """The instance, up for this module, torn down after it (a no-op when a test took it down)."""
    _result, seconds = lab()
    print("pod: lab.yml took %.0f s" % seconds)
    yield
    lab("-e", "lab_state=absent")


def _collected():
    """The test ids the files hold (as pytest collects them on the instance): {file: set of ids}."""
    listing = run([LAB_INSTANCE_TESTS, POD_VARS] + list(FILES) + ["--collect-only", "-q"], timeout=300).ok()
    ids = {}
    for line in listing.output.splitlines():
        if "::" in line:
            path, name = line.strip().split("::", 1)
            ids.setdefault(path, set()).add(name)
    return ids


def _junit(path):
    """(suite totals, {file: set of test ids that ran}) from pytest's junit XML."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    totals = dict((key, sum(int(s.get(key, 0)) for s in suites)) for key in ("tests", "failures", "errors", "skipped"))
    ran = {}
    for case in root.iter("testcase"):
        ran.setdefault(case.get("classname").replace(".", "/") + ".py", set()).add(case.get("name"))
    return totals, ran


def test_every_test_of_the_default_topology_and_the_data_planes_passes_on_podman(pod, tmp_path):
    expected = _collected()
    assert sorted(expected) == sorted(FILES), expected
    junit = str(tmp_path / "pod.xml")
    started = time.time()
    suite = run([LAB_INSTANCE_TESTS, POD_VARS] + list(FILES) + ["--junitxml=" + junit, "-v"], timeout=SUITE_TIMEOUT)
    seconds = time.time() - started
    suite.ok()
    totals, ran = _junit(junit)
    assert (totals["failures"], totals["errors"], totals["skipped"]) == (0, 0, 0), (totals, suite.output[-8000:])
    assert ran == expected, "collected %s, ran %s" % (expected, ran)
    assert totals["tests"] == sum(len(ids) for ids in expected.values()), totals
    print("pod: %s in %.0f s" % (", ".join("%s %d passed" % (os.path.basename(f), len(ran[f])) for f in FILES), seconds))


def test_a_lookup_of_an_outside_name_from_a_podman_container_fails_at_once_and_nothing_leaves(pod):
    client = docker.DockerClient(base_url="unix://%s/pod1/docker.sock" % POD["lab_run_dir"], timeout=120)
    image = "crosshost-lab/client:1"
    # aardvark-dns answers on networks made through the API (the default network has no DNS), as the
    # topology's ambassador network is; a peer's name on it must still resolve.
    network = client.networks.create("lab-dns-check")
    peer = client.containers.run(image, ["sleep", "100000"], name="lab-dns-peer", network="lab-dns-check", detach=True)
    capture = labkit.capture_leaving("xhv-pod1", POD["lab_subnet"])
    try:
        # Timed inside the container: starting one is slow on a loaded machine, the lookups must not be.
        script = ("nslookup lab-dns-peer; echo rc=$?; echo outside; started=$(date +%%s); "
                  "for i in 1 2 3; do nslookup %s; echo rc=$?; done; echo took=$(($(date +%%s) - started))") % OUTSIDE_NAME
        # Run in the peer, by exec: its output comes back on the exec's own stream. A short-lived
        # container's logs, read at once after its exit, could miss its last lines on Podman 4.3.
        _code, output = peer.exec_run(["sh", "-c", script], stderr=True)
    finally:
        out, err = labkit.stop_capture(capture)
        peer.remove(force=True)
        network.remove()
    text = output.decode()
    local, outside = text.split("outside", 1)
    assert "rc=0" in local, text
    assert outside.count("rc=1") == 3 and "timed out" not in outside, text
    # Before: 33 s, each lookup waiting for the client's timeouts (aardvark-dns answered nothing when its
    # forward to the machine's resolver failed).
    took = int(re.search(r"took=(\d+)", outside).group(1))
    assert took <= 3, "three lookups took %d s:\n%s" % (took, text)
    assert out.strip() == "", "traffic left lab host pod1 for outside the lab:\n%s" % out
    assert "\n0 packets captured" in "\n" + err, err


def test_absent_leaves_nothing_of_the_instance_and_a_second_run_changes_nothing(pod):
    down, seconds = lab("-e", "lab_state=absent")
    assert "changed=0" not in down.output, "the instance was not up:\n%s" % down.output[-3000:]
    left = labkit.leftovers(POD)
    assert left == dict((kind, []) for kind in left), left
    again, _seconds = lab("-e", "lab_state=absent")
    changed = re.findall(r"\bchanged=(\d+)", again.output)
    assert changed and set(changed) == {"0"}, again.output[-3000:]
    print("pod: lab_state=absent took %.0f s" % seconds)
