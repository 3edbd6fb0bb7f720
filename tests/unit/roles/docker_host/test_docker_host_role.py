"""roles/docker_host: its lowest Docker SDK is the modules' own."""

import os

import yaml

from ansible_collections.crosshost.ambassador.plugins.module_utils._engine import MIN_SDK

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLE = os.path.join(ROOT, "roles", "docker_host")


def test_the_role_checks_the_sdk_version_the_modules_need():
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        assert yaml.safe_load(handle)["_docker_host_min_sdk"] == ".".join(str(n) for n in MIN_SDK)


def test_the_defaults_are_the_argument_spec_defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    for name, option in options.items():
        assert option["default"] == defaults[name], name
