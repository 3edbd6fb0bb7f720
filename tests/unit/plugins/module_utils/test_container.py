"""The one table of container fields: planned containers and their specs."""

import pytest

from ansible_collections.crosshost.ambassador.plugins.module_utils._container import (
    FIELDS, PLAN_FIELDS, SPEC_KEYS, planned_container, spec)
from ansible_collections.crosshost.ambassador.plugins.module_utils._reconcile import spec_hash


def test_a_planned_container_has_every_field_and_fresh_empty_defaults():
    a, b = planned_container(name="a"), planned_container(name="b")
    assert set(a) == set(FIELDS) | set(PLAN_FIELDS)
    assert a["restart_policy"] == "unless-stopped" and a["tls"] is False and a["volumes"] == []
    a["volumes"].append("x:/x")
    assert b["volumes"] == []


def test_an_unknown_field_is_refused():
    with pytest.raises(KeyError, match="colour"):
        planned_container(name="a", colour="red")


def test_the_spec_records_the_tls_files_only_of_a_container_with_tls():
    with_tls, without = planned_container(name="a", tls=True), planned_container(name="b")
    assert spec(with_tls, "f1")["tls_fingerprint"] == "f1"
    assert spec(without, "f1")["tls_fingerprint"] is None
    assert spec_hash(spec(with_tls, "f1")) != spec_hash(spec(with_tls, "f2"))
    assert "tls" not in spec(with_tls) and "target" not in spec(with_tls) and set(spec(with_tls)) == set(SPEC_KEYS)


def test_the_spec_does_not_change_the_planned_container():
    planned = planned_container(name="a", tls=True, aliases=["b", "a"])
    spec(planned, "f1")
    assert "tls_fingerprint" not in planned and planned["aliases"] == ["b", "a"]
