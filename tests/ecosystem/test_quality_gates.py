"""The quality gates a collection maintainer runs, each as its own tool runs it."""

import glob
import json
import os
import re

import pytest
import yaml

from ecosystem_helpers import LOWEST_BIN, ROOT, run


def test_ansible_test_sanity_and_units_pass_on_the_committed_collection():
    result = run([os.path.join(ROOT, "scripts", "ansible-test"), "all"], timeout=1200).ok()
    assert 'Running sanity test "validate-modules"' in result.output and "FATAL" not in result.output
    # ansible-test units ran every unit test (in groups: module_utils, controller), as many as pytest finds.
    units = sum(int(n) for n in re.findall(r"^=+ (\d+) passed", result.output, re.M))
    collected = run(["python", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/unit"]).ok()
    assert "%d tests collected" % units in collected.output


def test_ansible_lint_passes_with_the_production_profile():
    result = run(["ansible-lint"]).ok()
    assert "Profile 'production' was required, and it passed" in result.output


def test_changelog_fragments_are_valid_antsibull_changelog():
    run(["antsibull-changelog", "lint"]).ok()
    assert os.path.exists(os.path.join(ROOT, "changelogs", "changelog.yaml"))
    assert glob.glob(os.path.join(ROOT, "changelogs", "fragments", "*.yml"))


def _plugins():
    found = [("module", os.path.basename(p)[:-3]) for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py"))]
    found += [("filter", os.path.basename(p)[:-3]) for p in glob.glob(os.path.join(ROOT, "plugins", "filter", "*.py"))]
    return sorted(found)


@pytest.mark.parametrize("kind, name", _plugins())
def test_ansible_doc_shows_documentation_examples_and_return(kind, name):
    result = run(["ansible-doc", "-t", kind, "--json", "crosshost.ambassador." + name]).ok()
    doc = json.loads(result.output)["crosshost.ambassador." + name]
    assert doc["doc"]["short_description"] and doc["doc"]["description"]
    assert doc["examples"].strip()
    assert doc["return"]


def test_the_action_plugin_is_documented_by_its_module_stub():
    actions = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "plugins", "action", "*.py")))
    assert all(os.path.exists(os.path.join(ROOT, "plugins", "modules", a)) for a in actions)


@pytest.mark.parametrize("role", sorted(os.listdir(os.path.join(ROOT, "roles"))))
def test_every_role_has_an_argument_spec_that_ansible_doc_shows(role):
    with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")) as handle:
        assert yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    result = run(["ansible-doc", "-t", "role", "--json", "crosshost.ambassador." + role]).ok()
    assert json.loads(result.output)["crosshost.ambassador." + role]["entry_points"]["main"]["options"]


def test_a_bad_role_argument_fails_with_ansibles_own_message(tmp_path):
    playbook = tmp_path / "bad.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n"
        "    - role: crosshost.ambassador.topology\n      ambassador_apply_timeout: soon\n")
    result = run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook)])
    assert result.rc != 0
    assert "Validating arguments against arg spec" in result.output
    assert "ambassador_apply_timeout" in result.output and "soon" in result.output


def test_unit_tests_pass_on_the_lowest_ansible_core_that_runtime_yml_claims():
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as handle:
        lowest = yaml.safe_load(handle)["requires_ansible"].split(",")[0].lstrip(">=")
    version = run([os.path.join(LOWEST_BIN, "ansible"), "--version"], bin_dir=LOWEST_BIN).ok()
    assert version.output.startswith("ansible [core %s]" % lowest)
    run([os.path.join(LOWEST_BIN, "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"],
        bin_dir=LOWEST_BIN).ok()
