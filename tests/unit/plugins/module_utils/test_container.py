"""The one table of container fields: planned containers and their specs."""

import json
import os

import pytest

from ansible_collections.crosshost.ambassador.plugins.module_utils._container import (
    FIELDS, PLAN_FIELDS, SPEC_KEYS, planned_container, spec)
from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import plan_topology
from ansible_collections.crosshost.ambassador.plugins.module_utils._reconcile import (
    SPEC_LABEL, labels_for, spec_hash, stored_spec)


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


# Recorded with the collection as it was before the container field "role" was named "kind"
# (main at a6e3a02): the labels, the spec stored in one and its hash, for the same inventory.
KNOWN_LABELS = os.path.join(os.path.dirname(__file__), "data", "labels_before_kind.json")


def test_the_stored_spec_labels_and_hash_are_unchanged_for_the_same_inventory():
    hosts = {"host1": {"advertise_address": "10.0.0.1", "consumes": ["redis", "web"], "kernel_image": "k:1"},
             "host2": {"advertise_address": "10.0.0.2", "consumes": []},
             "host3": {"advertise_address": "10.0.0.3", "consumes": ["redis"], "kernel_image": "k:1"}}
    services = {"redis": {"host": "host2", "port": 6379, "image": "redis:7", "volumes": ["redis-data:/data"],
                          "env": {"TZ": "UTC"}, "command": ["redis-server"], "tls": True},
                "web": {"host": "host3", "ports": [80, 81], "published": [8080, 8081], "dataplane": "kernel"}}
    plans = plan_topology(services, hosts)
    found = dict(("%s/%s" % (host, ct["name"]), labels_for(spec(ct, "fp1")))
                 for host, plan in plans.items() for ct in plan["containers"])
    with open(KNOWN_LABELS) as known:
        recorded = json.load(known)
    # Since then one kind of container changed, on purpose and once: a provider-side kernel ambassador reads its
    # allow-list from a delivered file instead of its command (changelog 14-replicas-allow-list-delivered).
    assert sorted(found) == sorted(recorded)
    assert [name for name in sorted(found) if found[name] != recorded[name]] == ["host3/web_ambassador"]
    assert "10.0.0.1/32" in recorded["host3/web_ambassador"][SPEC_LABEL]
    assert "10.0.0.1" not in found["host3/web_ambassador"][SPEC_LABEL]
    # And read back: the stored spec is the planned one, in the table's names.
    for labels in found.values():
        assert stored_spec(labels)["kind"] in ("service", "ambassador") and "role" not in stored_spec(labels)
