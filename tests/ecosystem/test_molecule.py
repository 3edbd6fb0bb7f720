"""Molecule's own `molecule test`, for both scenarios, on lab hosts each scenario creates and destroys."""

import re

import pytest

from ecosystem_helpers import run


@pytest.mark.parametrize("scenario", ["default", "move"])
def test_molecule_scenario(scenario):
    result = run(["molecule", "test", "-s", scenario], timeout=1200).ok()
    steps = ["create", "converge", "idempotence", "verify", "destroy"] + (["side_effect"] if scenario == "move" else [])
    for step in steps:
        # "move > create: Executed: Successful" (with a terminal: "move ➜ create: ...")
        assert re.search(r"%s (>|➜) %s: Executed: Successful" % (scenario, step), result.output), step
    assert not re.search(r"failed=[1-9]", result.output)
