"""The shared corpus of malformed topologies (tests/data), as the plan action hands them to the planner.

Here, beside the action plugin, because it reads the variables as the action does (host_settings)
(ansible-test runs module_utils tests without the controller's plugins).
"""

import os

import pytest
import yaml

from ansible_collections.crosshost.ambassador.plugins.action.plan import host_settings
from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import plan_topology
from ansible_collections.crosshost.ambassador.plugins.module_utils._topology import TopologyError


def problems(services, host_settings):
    with pytest.raises(TopologyError) as err:
        plan_topology(services, host_settings)
    return [str(p) for p in err.value.problems]


CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "data", "malformed_topologies.yml")
with open(CORPUS) as _handle:
    MALFORMED = yaml.safe_load(_handle)


def test_the_corpus_is_large_and_its_ids_unique():
    ids = [case["id"] for case in MALFORMED]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", MALFORMED, ids=[case["id"] for case in MALFORMED])
def test_malformed_topology(case):
    hostvars = dict(("host%d" % i, {"ambassador_advertise_address": "10.77.0.1%d" % i}) for i in (1, 2, 3))
    for host, variables in (case.get("host_vars") or {}).items():
        hostvars[host].update(variables)
    found = problems(case["services"], dict((host, host_settings(hv)) for host, hv in hostvars.items()))
    assert any(p.startswith(case["expect"]) for p in found), found
    assert all(". Fix: " in p for p in found)
