"""Podman: the default topology's integration tests on the lab instance "pod", then its tear-down.

The instance (playbooks/vars/lab_pod.yml) runs every lab host on Debian 12's Podman 4.3 through its
Docker-compatible socket. scripts/lab-instance-tests runs tests/integration/test_topology.py and
test_dataplanes.py on it (their lab fixture brings it up); every test those files hold must pass, none
skipped. Then lab_state=absent must leave nothing of the instance on the machine (labkit.leftovers, as
tests/integration/test_lab_isolation.py checks the "eng" instance).
"""

import os
import sys
import time
import xml.etree.ElementTree as ET

import yaml

from ecosystem_helpers import ROOT, run

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import labkit  # noqa: E402  pylint: disable=wrong-import-position  (shared with the integration tests and bench/)

POD_VARS = os.path.join(ROOT, "playbooks", "vars", "lab_pod.yml")
LAB_INSTANCE_TESTS = os.path.join(ROOT, "scripts", "lab-instance-tests")
FILES = ("tests/integration/test_topology.py", "tests/integration/test_dataplanes.py")
# The whole run, bring-up included (about half an hour on 2 shared cores): generous.
SUITE_TIMEOUT = 5400


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
        path = case.get("classname").replace(".", "/") + ".py"
        ran.setdefault(path, set()).add(case.get("name"))
    return totals, ran


def test_the_default_topologys_tests_pass_on_podman_and_absent_leaves_nothing(tmp_path):
    expected = _collected()
    assert sorted(expected) == sorted(FILES), expected
    junit = str(tmp_path / "pod.xml")
    started = time.time()
    try:
        suite = run([LAB_INSTANCE_TESTS, POD_VARS] + list(FILES) + ["--junitxml=" + junit, "-v"], timeout=SUITE_TIMEOUT)
    finally:
        suite_seconds = time.time() - started
        started = time.time()
        down = run(["ansible-playbook", "playbooks/lab.yml", "-e", "@" + POD_VARS, "-e", "lab_state=absent"])
        down_seconds = time.time() - started
    suite.ok()
    totals, ran = _junit(junit)
    assert (totals["failures"], totals["errors"], totals["skipped"]) == (0, 0, 0), (totals, suite.output[-8000:])
    assert ran == expected, "collected %s, ran %s" % (expected, ran)
    assert totals["tests"] == sum(len(ids) for ids in expected.values()), totals

    down.ok()
    with open(POD_VARS) as handle:
        left = labkit.leftovers(yaml.safe_load(handle))
    assert left == dict((kind, []) for kind in left), left
    print("pod: %s ran in %.0f s (bring-up included); lab_state=absent took %.0f s"
          % (", ".join("%s %d passed" % (os.path.basename(f), len(ran[f])) for f in FILES), suite_seconds, down_seconds))
