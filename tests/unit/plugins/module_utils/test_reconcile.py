"""The decision of what to do on one host, on plain data."""

from ansible_collections.crosshost.ambassador.plugins.module_utils._reconcile import (
    HASH_LABEL, OWNER_LABEL, container_spec, decide, held_back, labels_for, named_volumes, pending, replace_method,
    replace_side_by_side, resume_actions, select, services_of, spec_hash, split_phases, updates_restart_policy)


def planned(name="redis_ambassador", **over):
    ct = {"name": name, "kind": "ambassador", "side": "consumer", "service": "redis", "image": "socat:1",
          "entrypoint": ["socat"], "command": ["TCP-LISTEN:6379,fork,reuseaddr", "TCP:10.0.0.2:6379"],
          "env": {}, "volumes": [], "network": "ambassador", "aliases": ["redis"], "published": [],
          "init": False, "restart_policy": "unless-stopped"}
    ct.update(over)
    return ct


def existing(ct, state="running", cid="id1"):
    return {"id": cid, "name": ct["name"], "labels": labels_for(container_spec(ct)), "state": state}


def test_nothing_exists_everything_is_created_services_first():
    d = decide([planned(), planned("redis", kind="service", side=None)], [])
    assert [(a["action"], a["name"]) for a in d["actions"]] == [("create", "redis"), ("create", "redis_ambassador")]


def test_up_to_date_running_container_is_left_alone():
    ct = planned()
    d = decide([ct], [existing(ct)])
    assert d["actions"] == [] and d["unchanged"] == ["redis_ambassador"]


def test_changed_spec_is_recreated_with_the_reason():
    old = planned()
    new = planned(command=["TCP-LISTEN:6379,fork,reuseaddr", "TCP:10.0.0.3:6379"])
    d = decide([new], [existing(old)])
    (action,) = d["actions"]
    assert action["action"] == "recreate" and action["reason"] == "changed: command"
    assert action["changes"]["command"]["after"][1] == "TCP:10.0.0.3:6379"
    assert d["before"]["redis_ambassador"]["command"][1] == "TCP:10.0.0.2:6379"


def test_stopped_container_is_started_not_recreated():
    ct = planned()
    d = decide([ct], [existing(ct, state="exited")])
    assert [a["action"] for a in d["actions"]] == ["start"]


def test_owned_containers_no_longer_planned_are_removed_first():
    keep, gone = planned(), planned("web_ambassador", service="web")
    d = decide([keep], [existing(keep), existing(gone, cid="id2")])
    assert d["actions"] == [{"action": "remove", "kind": "container", "name": "web_ambassador", "id": "id2",
                             "container_kind": "ambassador", "service": "web", "reason": "no longer in the plan for this host"}]


def test_a_foreign_container_with_a_planned_name_is_a_conflict_and_nothing_is_done():
    stale = planned("web_ambassador", service="web")
    foreign = {"id": "f", "name": "redis_ambassador", "labels": {"maintainer": "someone"}, "state": "running"}
    d = decide([planned()], [foreign, existing(stale, cid="id2")])
    assert d["conflicts"] == ["container redis_ambassador exists"] and d["actions"] == []


def test_foreign_containers_with_other_names_are_ignored():
    d = decide([], [{"id": "f", "name": "app", "labels": {}, "state": "running"}])
    assert d["actions"] == [] and d["before"] == {}


def test_hash_ignores_ordering_of_sets_but_not_values():
    a = container_spec(planned(aliases=["x", "redis"], env={"B": "1", "A": "2"}))
    b = container_spec(planned(aliases=["redis", "x"], env={"A": "2", "B": "1"}))
    assert spec_hash(a) == spec_hash(b)
    assert spec_hash(a) != spec_hash(container_spec(planned(aliases=["redis"])))


def test_labels_mark_ownership_and_carry_the_hash():
    spec = container_spec(planned())
    labels = labels_for(spec)
    assert labels[OWNER_LABEL] == "true" and labels[HASH_LABEL] == spec_hash(spec)


def test_a_port_published_by_a_foreign_container_is_a_conflict():
    ct = planned("redis_ambassador", side="provider", aliases=[],
                 published=[{"host_ip": "10.0.0.2", "host_port": 6379, "port": 6379, "protocol": "tcp"}])
    other = {"id": "f", "name": "someones-redis", "labels": {}, "state": "running",
             "ports": [{"IP": "0.0.0.0", "PrivatePort": 6379, "PublicPort": 6379, "Type": "tcp"}]}
    d = decide([ct], [other])
    assert d["conflicts"] == ["port 10.0.0.2:6379/tcp, wanted by redis_ambassador, is published by container "
                              "someones-redis"]
    assert d["actions"] == []
    # Another address, or udp, does not clash.
    other["ports"] = [{"IP": "10.0.0.9", "PublicPort": 6379, "Type": "tcp"},
                      {"IP": "0.0.0.0", "PublicPort": 6379, "Type": "udp"}]
    assert decide([ct], [other])["conflicts"] == []


def test_a_move_splits_into_make_switch_and_break():
    actions = [
        {"action": "remove", "name": "old_ambassador", "id": "1"},
        {"action": "create", "name": "new", "spec": {"published": []}},
        {"action": "recreate", "name": "redis_ambassador", "id": "2",
         "spec": {"kind": "ambassador", "side": "consumer", "published": []}},
        {"action": "start", "name": "stopped", "id": "3"},
    ]
    old_port = {"host_ip": "10.0.0.2", "host_port": 80, "protocol": "tcp"}
    phases = split_phases(actions, {"old_ambassador": {"published": [old_port]}})
    assert [a["name"] for a in phases["make"]] == ["new", "stopped"]
    assert [a["name"] for a in phases["switch"]] == ["redis_ambassador"]
    assert [a["name"] for a in phases["break"]] == ["old_ambassador"]


def test_a_removal_that_frees_a_needed_published_port_comes_first():
    port = {"host_ip": "10.0.0.2", "host_port": 80, "protocol": "tcp", "port": 80}
    actions = [{"action": "remove", "name": "aa_ambassador", "id": "1"},
               {"action": "create", "name": "bb_ambassador", "spec": {"published": [port]}}]
    phases = split_phases(actions, {"aa_ambassador": {"published": [port]}})
    assert [a["name"] for a in phases["make"]] == ["aa_ambassador", "bb_ambassador"] and phases["break"] == []


def test_an_ambassador_changing_sides_goes_with_make_on_the_new_host_and_break_on_the_old():
    """A move: the new host's ambassador turns provider-side before consumers switch; the old
    host's turns consumer-side only after they have."""
    port = {"host_ip": "10.0.0.3", "host_port": 6379, "protocol": "tcp", "port": 6379}
    consumer_side = {"kind": "ambassador", "side": "consumer", "published": []}
    provider_side = {"kind": "ambassador", "side": "provider", "published": [port]}
    on_new_host = [{"action": "create", "name": "redis", "spec": {"kind": "service", "published": []}},
                   {"action": "recreate", "name": "redis_ambassador", "id": "1", "spec": provider_side}]
    phases = split_phases(on_new_host, {"redis_ambassador": consumer_side})
    assert [a["name"] for a in phases["make"]] == ["redis", "redis_ambassador"]
    assert phases["switch"] == [] and phases["break"] == []
    on_old_host = [{"action": "remove", "name": "redis", "id": "2"},
                   {"action": "recreate", "name": "redis_ambassador", "id": "3", "spec": consumer_side}]
    phases = split_phases(on_old_host, {"redis": {"kind": "service", "published": []},
                                        "redis_ambassador": provider_side})
    assert phases["make"] == [] and phases["switch"] == []
    assert [a["name"] for a in phases["break"]] == ["redis", "redis_ambassador"]
    # A provider-side ambassador that stays provider-side (say, a new allow-list) switches.
    phases = split_phases([{"action": "recreate", "name": "redis_ambassador", "id": "4", "spec": provider_side}],
                          {"redis_ambassador": provider_side})
    assert [a["name"] for a in phases["switch"]] == ["redis_ambassador"]


def test_ambassadors_whose_old_and_new_selves_share_no_published_port_are_replaced_side_by_side():
    port = {"host_ip": "10.0.0.2", "host_port": 80, "protocol": "tcp"}
    consumer_side = {"kind": "ambassador", "published": []}
    provider_side = {"kind": "ambassador", "published": [port]}
    assert replace_side_by_side(consumer_side, consumer_side)
    assert replace_side_by_side(provider_side, consumer_side)
    assert replace_side_by_side(consumer_side, provider_side)
    assert replace_side_by_side(provider_side, {"kind": "ambassador", "published": [dict(port, host_port=81)]})
    assert not replace_side_by_side(provider_side, provider_side)
    assert not replace_side_by_side({"kind": "service", "published": []}, {"kind": "service", "published": []})


def test_on_an_engine_that_cannot_change_a_restart_policy_every_recreate_is_stop_first():
    consumer_side = {"kind": "ambassador", "published": []}
    assert replace_method(consumer_side, consumer_side) == "side_by_side"
    assert replace_method(consumer_side, consumer_side, side_by_side=False) == "stop_first"
    # /version answers (the lab's engines): Podman 4.3 has no container update in its compatible API.
    podman43 = {"Version": "4.3.1", "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}, {"Name": "Conmon"}]}
    assert not updates_restart_policy(podman43)
    assert updates_restart_policy({"Components": [{"Name": "Podman Engine", "Version": "5.4.2"}]})
    assert updates_restart_policy({"Version": "20.10.24", "Components": [{"Name": "Engine", "Version": "20.10.24"}]})
    assert updates_restart_policy({"Version": "26.1.5"})
    ambassador = planned("echo_ambassador")
    changed = dict(ambassador, command=ambassador["command"] + ["-d"])
    for side_by_side, method in ((True, "side_by_side"), (False, "stop_first")):
        d = decide([changed], [existing(ambassador)], side_by_side=side_by_side)
        assert [(s["action"], s.get("method")) for s in d["steps"] if s["kind"] == "container"] == [("recreate", method)]


def test_a_stop_first_service_leaving_a_host_is_stopped_before_anything_then_removed_last():
    redis = planned("redis", kind="service", side=None, volumes=["redis-data:/data"])
    d = decide([], [existing(redis)], stop_first=["redis"])
    assert [(a["action"], a["service"]) for a in d["actions"]] == [("stop", "redis"), ("remove", "redis")]
    phases = split_phases(d["actions"], d["before"])
    assert [a["action"] for a in phases["stop"]] == ["stop"] and [a["action"] for a in phases["break"]] == ["remove"]
    # Already stopped (an earlier run stopped it): only the removal is left.
    d = decide([], [existing(redis, state="exited")], stop_first=["redis"])
    assert [a["action"] for a in d["actions"]] == ["remove"]
    # Not stop-first (or an ambassador): no stop step.
    assert [a["action"] for a in decide([], [existing(redis)])["actions"]] == ["remove"]


def test_held_services_wait_and_the_others_go_on():
    actions = [{"action": "recreate", "name": "redis_ambassador", "service": "redis"},
               {"action": "remove", "name": "echo", "service": "echo"}]
    go, held = held_back(actions, ["redis"])
    assert [a["name"] for a in go] == ["echo"] and [a["name"] for a in held] == ["redis_ambassador"]
    assert held_back(actions, None) == (actions, [])
    assert services_of(actions) == ["echo", "redis"]


def test_a_called_off_stop_first_move_starts_only_that_services_stopped_containers():
    redis = planned("redis", kind="service", side=None)
    echo = planned("echo", kind="service", side=None, service="echo")
    amb = planned()
    found = [existing(redis, state="exited"), existing(echo, state="exited", cid="id2"),
             existing(amb, state="exited", cid="id3"),
             {"id": "f", "name": "users", "labels": {}, "state": "exited"}]
    assert [(a["action"], a["name"]) for a in resume_actions(found, ["redis"])] == [("start", "redis")]
    assert resume_actions([existing(redis)], ["redis"]) == []


def test_named_volumes_are_what_stays_behind():
    assert named_volumes({"volumes": ["redis-data:/data", "/srv/x:/x:ro", "./rel:/y", "cache:/c:ro"]}) == [
        "redis-data", "cache"]
    assert named_volumes(None) == []


def test_a_consumer_side_ambassador_is_created_with_the_switch_after_its_provider_is_made():
    consumer_side = {"kind": "ambassador", "side": "consumer", "published": []}
    provider_side = {"kind": "ambassador", "side": "provider", "published": []}
    actions = [{"action": "create", "name": "web_ambassador", "spec": consumer_side},
               {"action": "create", "name": "db_ambassador", "spec": provider_side},
               {"action": "create", "name": "db", "spec": {"kind": "service", "published": []}}]
    phases = split_phases(actions, {})
    assert [a["name"] for a in phases["make"]] == ["db_ambassador", "db"]
    assert [a["name"] for a in phases["switch"]] == ["web_ambassador"]


def test_steps_carry_their_phase_and_method_and_select_takes_those_of_some_phases():
    old = planned(command=["old"])
    d = decide([planned(), planned("redis", kind="service", side=None, image="redis:7")], [existing(old)],
               network="ambassador", networks=[], images=["socat:1"])
    assert [(s["action"], s["name"], s["phase"], s.get("method")) for s in d["steps"]] == [
        ("create", "ambassador", "make", None), ("pull", "redis:7", "make", None), ("create", "redis", "make", None),
        ("recreate", "redis_ambassador", "switch", "side_by_side")]
    taken, held = select(d["steps"], ["switch"])
    assert [s["name"] for s in taken] == ["redis_ambassador"] and held == []
    taken, held = select(d["steps"], ["make", "switch"], hold=["redis"])
    assert [s["name"] for s in taken] == ["ambassador"] and [s["name"] for s in held] == ["redis", "redis_ambassador"]
    assert pending(d["steps"], ["make"]) == (
        {"stop": 0, "switch": 1, "break": 0}, {"stop": [], "switch": ["redis"], "break": []})
    # The decision's own count (no phase taken) includes the missing network and the pull, not only containers.
    assert pending(d["steps"], [])[0] == {"stop": 0, "make": 3, "switch": 1, "break": 0}
    assert replace_method({"kind": "service", "published": []}, {"kind": "service", "published": []}) == "stop_first"
