"""Every malformed topology of the corpus fails in the plan step, and nothing changes on any lab host."""

import os

import pytest
import yaml

from conftest import ROOT, Topology, converge

with open(os.path.join(ROOT, "tests", "data", "malformed_topologies.yml")) as handle:
    # The lab's hosts have an ansible_host (they are reached over SSH): a case that needs a host
    # without one is for the unit corpus test only.
    MALFORMED = [case for case in yaml.safe_load(handle) if not case.get("without_ansible_host")]


@pytest.fixture(scope="module")
def baseline(lab, tmp_path_factory):
    """The default topology converged once; every case must leave the lab exactly like this."""
    converge(lab, Topology(tmp_path_factory.mktemp("baseline") / "topology"))
    return lab.snapshot()


@pytest.mark.parametrize("case", MALFORMED, ids=[case["id"] for case in MALFORMED])
def test_malformed_topology_changes_nothing(lab, topology, baseline, case):
    topology.set_services(case["services"])
    topology.host_vars("host1", ambassador_consumes=[])
    for host, variables in (case.get("host_vars") or {}).items():
        topology.host_vars(host, **variables)

    run = lab.site(topology)

    assert run.rc != 0
    (plan,) = run.results_of("crosshost.ambassador.plan").values()
    problems = plan["result"]["problems"]
    assert any(p.startswith(case["expect"]) for p in problems), problems
    assert all(". Fix: " in p for p in problems)
    assert "nothing was changed on any host" in plan["result"]["msg"]
    assert run.results_of("crosshost.ambassador.apply") == {}, "a host was touched"
    assert lab.snapshot() == baseline
