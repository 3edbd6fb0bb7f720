"""Molecule's own `molecule test`, for both scenarios, on lab hosts each scenario creates and destroys."""

import pytest

from ecosystem_helpers import run


@pytest.mark.parametrize("scenario", ["default", "move"])
def test_molecule_scenario(scenario):
    result = run(["molecule", "test", "-s", scenario], timeout=1200).ok()
    for step in ("create", "converge", "verify", "destroy"):
        assert "%s ➜ %s: Executed: Successful" % (scenario, step) in result.output, step
    if scenario == "default":
        assert "default ➜ idempotence: Executed: Successful" in result.output
    else:
        assert "move ➜ side_effect: Executed: Successful" in result.output
