"""A service on several hosts (replicas): validation, plans and the balancing ambassador's program, on plain data."""

import subprocess

import pytest

from ansible_collections.crosshost.ambassador.plugins.module_utils._container import spec as spec_of
from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import (
    ALLOW_FILE, HEALTHY_LOG, REPLICAS_FILE, addresses_of, addresses_text, ambassador_process, balanced_process,
    balanced_script, healthy_replicas)
from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import plan_topology
from ansible_collections.crosshost.ambassador.plugins.module_utils._reconcile import decide, labels_for
from ansible_collections.crosshost.ambassador.plugins.module_utils._render import render_dot
from ansible_collections.crosshost.ambassador.plugins.module_utils._topology import TopologyError, parse_placement

ADDR = {"host1": "10.0.0.1", "host2": "10.0.0.2", "host3": "10.0.0.3", "host4": "10.0.0.4"}
DEFAULT_HEALTH = {"interval": 1, "timeout": 1, "fall": 2, "rise": 2}


def hosts(**consumes):
    return dict((h, {"advertise_address": a, "consumes": consumes.get(h, []), "kernel_image": "kernel:1"})
                for h, a in ADDR.items())


def by_name(plan):
    return dict((c["name"], c) for c in plan["containers"])


def problems(services, settings=None, **kwargs):
    with pytest.raises(TopologyError) as err:
        plan_topology(services, settings or hosts(host1=["api"]), **kwargs)
    return [str(p) for p in err.value.problems]


API = {"hosts": ["host2", "host3", "host4"], "port": 7777, "image": "api:1"}


def test_each_replica_runs_the_service_and_a_provider_side_ambassador():
    plans = plan_topology({"api": dict(API)}, hosts(host1=["api"]))
    for host in ("host2", "host3", "host4"):
        found = by_name(plans[host])
        assert sorted(found) == ["api", "api_ambassador"]
        assert found["api"]["kind"] == "service" and found["api"]["image"] == "api:1"
        provider = found["api_ambassador"]
        # Each lets in only the consumer, on its own host's address; without a dataplane set, the kernel plane.
        assert provider["side"] == "provider" and provider["dataplane"] == "kernel"
        assert provider["published"] == [{"host_ip": ADDR[host], "host_port": 7777, "port": 7777, "protocol": "tcp"}]
        assert provider["files"] == {ALLOW_FILE: "10.0.0.1 end\n"}
        assert plans[host]["provides"] == ["api"]
    consumer = by_name(plans["host1"])["api_ambassador"]
    assert consumer["side"] == "consumer" and consumer["aliases"] == ["api"] and consumer["dataplane"] == "kernel"
    assert consumer["image"] == "kernel:1" and consumer["cap_add"] == ["NET_ADMIN"]
    # Its replicas are a file delivered to it, not part of what defines it (nor its environment).
    assert consumer["env"] == {}
    assert consumer["files"] == {REPLICAS_FILE: "10.0.0.2 10.0.0.3 10.0.0.4 end\n"}
    assert consumer["command"] == [balanced_script([(7777, 7777)], "round_robin", DEFAULT_HEALTH)]
    assert plans["host1"]["environment"]["API_PORT"] == "tcp://api:7777"


def test_a_one_element_list_is_the_same_as_host():
    one = plan_topology({"api": dict(API, hosts=["host2"])}, hosts(host1=["api"]))
    host = plan_topology({"api": dict([(k, v) for k, v in API.items() if k != "hosts"], host="host2")},
                         hosts(host1=["api"]))
    assert one == host
    assert by_name(one["host1"])["api_ambassador"]["dataplane"] == "socat"


def test_a_replica_host_that_consumes_the_service_uses_its_own_replica():
    plans = plan_topology({"api": dict(API)}, hosts(host1=["api"], host3=["api"]))
    assert sorted(by_name(plans["host3"])) == ["api", "api_ambassador"]
    assert by_name(plans["host3"])["api_ambassador"]["side"] == "provider"
    assert plans["host3"]["environment"]["API_PORT"] == "tcp://api:7777"


def test_failover_and_health_settings_reach_the_consumer_side_program():
    health = {"interval": 0.5, "timeout": 0.3, "fall": 3, "rise": 1}
    plans = plan_topology({"api": dict(API, balance="failover", health=health)}, hosts(host1=["api"]))
    script = by_name(plans["host1"])["api_ambassador"]["command"][0]
    assert script == balanced_script([(7777, 7777)], "failover", health)
    assert "timeout 0.3 nc" in script and "sleep 0.5" in script and '-ge 3 ]' in script and '-ge 1 ]' in script
    assert '[ $# -gt 1 ] && set -- "$1"' in script


def test_adding_a_replica_changes_only_the_consumer_side_and_the_new_replica():
    before = plan_topology({"api": dict(API, hosts=["host2", "host3"])}, hosts(host1=["api"]))
    after = plan_topology({"api": dict(API)}, hosts(host1=["api"]))
    assert before["host2"] == after["host2"] and before["host3"] == after["host3"]
    assert before["host4"]["containers"] == [] and len(after["host4"]["containers"]) == 2
    # On the consumer host only the delivered list of replicas changes: the container stays.
    consumer_before, consumer_after = by_name(before["host1"])["api_ambassador"], by_name(after["host1"])["api_ambassador"]
    assert consumer_before["files"] != consumer_after["files"]
    assert dict(consumer_before, files=None) == dict(consumer_after, files=None)


def _running(containers, files):
    """What an engine would report of ``containers`` made from their plan, running, holding ``files``."""
    return [{"id": "id-" + ct["name"], "name": ct["name"], "labels": labels_for(spec_of(ct)), "state": "running",
             "ports": [], "files": files.get(ct["name"], {})} for ct in containers]


def test_a_replica_added_on_a_consumer_host_changes_only_the_other_replicas_allow_lists():
    # host4 consumed api; as a replica it uses its own, so it leaves the other replicas' allow-lists: a new
    # list is delivered to their provider-side ambassadors, which stay, with the connections open through them.
    settings = hosts(host1=["api"], host4=["api"])
    before = plan_topology({"api": dict(API, hosts=["host2", "host3"])}, settings)
    after = plan_topology({"api": dict(API)}, settings)
    for host in ("host2", "host3"):
        ambassador_before, ambassador_after = by_name(before[host])["api_ambassador"], by_name(after[host])["api_ambassador"]
        assert ambassador_before["files"] == {ALLOW_FILE: "10.0.0.1 10.0.0.4 end\n"}
        assert ambassador_after["files"] == {ALLOW_FILE: "10.0.0.1 end\n"}
        assert labels_for(spec_of(ambassador_before)) == labels_for(spec_of(ambassador_after))
        existing = _running(before[host]["containers"], {"api_ambassador": ambassador_before["files"]})
        changed = decide(after[host]["containers"], existing)
        # host4 is taken out once it forwards to its own replica: with the break, after the switch.
        assert [(s["action"], s["name"], s["phase"], s.get("allow")) for s in changed["steps"]] == [
            ("deliver", "api_ambassador", "break", {"added": [], "removed": ["10.0.0.4"]})]
        # And back: host4 is let in with the make, before its own ambassador switches to host2 and host3.
        taken_out = _running(after[host]["containers"], {"api_ambassador": ambassador_after["files"]})
        back = decide(before[host]["containers"], taken_out)
        assert [(s["action"], s["phase"], s["allow"]) for s in back["steps"]] == [
            ("deliver", "make", {"added": ["10.0.0.4"], "removed": []})]


def test_replicas_with_volumes_change_make_before_break_unless_told_otherwise():
    summary = {}
    db = {"host": "host2", "port": 5432, "image": "db:1", "volumes": ["db:/var/lib/db"]}
    plan_topology({"api": dict(API, volumes=["data:/data"]), "db": db}, hosts(host1=["api", "db"]), summary=summary)
    # Each replica has its own volume, so stopping one before another starts protects nothing.
    assert summary["stop_first"] == ["db"]
    plan_topology({"api": dict(API, volumes=["data:/data"], move="stop_first")}, hosts(host1=["api"]), summary=summary)
    assert summary["stop_first"] == ["api"]


def test_placement_overrides_take_a_list_of_hosts():
    assert parse_placement("api=host2+host3, redis=host1") == ({"api": ["host2", "host3"], "redis": "host1"}, [])
    assert parse_placement({"api": ["host2", "host3"]}) == ({"api": ["host2", "host3"]}, [])
    moved = plan_topology({"api": dict(API)}, hosts(host1=["api"]), placement="api=host3+host4")
    assert moved["host2"]["containers"] == [] and moved["host3"]["provides"] == ["api"]
    assert addresses_of(by_name(moved["host1"])["api_ambassador"]["files"][REPLICAS_FILE]) == ["10.0.0.3", "10.0.0.4"]
    # One host: the service is on that host alone, as with host:.
    single = plan_topology({"api": dict(API)}, hosts(host1=["api"]), placement={"api": ["host4"]})
    assert single["host4"]["provides"] == ["api"] and single["host2"]["provides"] == []


@pytest.mark.parametrize("placement, message", [
    ("api=host2+host2", "ambassador_placement_overrides.api: names a host more than once. Fix: list each host once."),
    ({"api": []}, "ambassador_placement_overrides.api: [] is not a host name, nor a list of them"),
    ({"api": ["host2", 5]}, "ambassador_placement_overrides.api: ['host2', 5] is not a host name, nor a list of them"),
    ("api=host2+host9", "ambassador_placement_overrides.api: host 'host9' is not in the inventory"),
])
def test_malformed_list_placements_change_nothing(placement, message):
    found = problems({"api": dict(API)}, placement=placement)
    assert len(found) == 1 and found[0].startswith(message)


@pytest.mark.parametrize("spec, expected", [
    (dict(API, host="host2"), "ambassador_services.api: has both host and hosts. Fix: keep host: for one host, or "
                              "hosts: for several."),
    (dict(API, hosts=[]), "ambassador_services.api.hosts: must be a non-empty list of inventory hosts, got an empty "
                          "list. Fix: write e.g. hosts: [host2, host3]."),
    (dict(API, hosts="host2"), "ambassador_services.api.hosts: must be a non-empty list of inventory hosts, got str"),
    (dict(API, hosts=["host2", "host9"]), "ambassador_services.api.hosts[1]: host 'host9' is not in the inventory"),
    (dict(API, hosts=["host2", 7]), "ambassador_services.api.hosts[1]: 7 is not a host name. Fix: list "
                                    "<inventory hostname>."),
    (dict(API, hosts=["host2", "host3", "host2"]), "ambassador_services.api.hosts: lists host2 more than once. Fix: "
                                                   "list each host once."),
    (dict(API, balance="random"), "ambassador_services.api.balance: 'random' is not a way to balance. Fix: use "
                                  "round_robin"),
    (dict(API, health=[1]), "ambassador_services.api.health: must be a mapping, got list"),
    (dict(API, health={"interval": 0}), "ambassador_services.api.health.interval: 0 is out of range. Fix: use a "
                                        "number from 0.2 to 3600."),
    (dict(API, health={"fall": 1.5}), "ambassador_services.api.health.fall: 1.5 is not an integer. Fix: use an "
                                      "integer from 1 to 100."),
    (dict(API, health={"rise": True}), "ambassador_services.api.health.rise: True is not an integer"),
    (dict(API, health={"interval": 1, "timeout": 2}), "ambassador_services.api.health.timeout: 2 is longer than the "
                                                      "interval 1"),
    (dict(API, health={"every": 1}), "ambassador_services.api.health.every: unknown setting. Fix: use only interval, "
                                     "timeout, fall, rise."),
    (dict(API, protocol="udp"), "ambassador_services.api.hosts: replicas are health-checked by TCP connects, and the "
                                "service is udp"),
    (dict(API, dataplane="socat"), "ambassador_services.api.dataplane: the socat data plane forwards to one host and "
                                   "cannot balance across 3 replicas. Fix: remove dataplane (a service on several "
                                   "hosts uses kernel), or set dataplane: kernel."),
    (dict(API, tls=True), "ambassador_services.api.tls: the kernel data plane forwards packets and cannot speak TLS "
                          "(asked for by tls: true). Fix: set tls: false on api (its replicas balance"),
])
def test_invalid_replicas_name_the_path_and_the_fix(spec, expected):
    found = problems({"api": spec})
    assert any(p.startswith(expected) for p in found), found


def test_tls_for_every_service_names_the_replicated_one_and_the_fix():
    found = problems({"api": dict(API)}, tls=True)
    assert found == ["ambassador_services.api.tls: the kernel data plane forwards packets and cannot speak TLS (asked "
                     "for by ambassador_tls). Fix: set tls: false on api (its replicas balance on the kernel data "
                     "plane, the one that can)."]


def test_a_consumer_without_a_kernel_image_is_told_what_to_set():
    settings = hosts(host1=["api"])
    settings["host1"]["kernel_image"] = None
    found = problems({"api": dict(API)}, settings)
    assert found == ["host1: ambassador_kernel_image: is not set, yet service 'api' uses the kernel data plane on "
                     "this host (it balances across its replicas). Fix: set it to an image with /bin/sh, "
                     "iptables-restore, getent, nc and timeout (the lab's is crosshost-lab/kernel:1)."]


def test_the_gate_sees_every_replica_as_a_host_of_the_service():
    summary = {}
    plan_topology({"api": dict(API)}, hosts(host1=["api"]), summary=summary)
    assert summary["service_hosts"] == {"api": ["host1", "host2", "host3", "host4"]}


def test_the_picture_draws_every_replica():
    plans = plan_topology({"api": dict(API)}, hosts(host1=["api"]))
    dot = render_dot(plans)
    for address in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        assert '"%s:7777"' % address in dot
    assert dot.count("-> \"10.0.0.") >= 3


def test_healthy_replicas_are_read_back_from_the_last_log_line():
    log = "\n".join(["crosshost.ambassador: healthy replicas: 10.0.0.2 10.0.0.3",
                     "crosshost.ambassador: replica 10.0.0.3 is down: 2 checks failed",
                     HEALTHY_LOG + "10.0.0.2"])
    assert healthy_replicas(log) == ["10.0.0.2"]
    assert healthy_replicas(log + "\n" + HEALTHY_LOG + "none\n") == []
    assert healthy_replicas("crosshost.ambassador: forwarding tcp 6379->6379\n") is None


def test_the_balancing_program_is_valid_shell_and_spreads_in_turn():
    script = balanced_script([(7777, 7777), (80, 8080)], "round_robin", DEFAULT_HEALTH)
    subprocess.run(["sh", "-n", "-c", script], check=True)
    # The rules for three healthy replicas, printed by the program's own function.
    rules = subprocess.run(["sh", "-c", script.split("\nuse() {", maxsplit=1)[0] + "\nrules 10.0.0.2 10.0.0.3 10.0.0.4\n"],
                           check=True, capture_output=True, text=True).stdout.splitlines()
    assert [r for r in rules if "--dport 7777 " in r and "DNAT" in r] == [
        "-A XHA_PRE -p tcp --dport 7777 -m statistic --mode nth --every 3 --packet 0 -j DNAT --to-destination 10.0.0.2:7777",
        "-A XHA_PRE -p tcp --dport 7777 -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination 10.0.0.3:7777",
        "-A XHA_PRE -p tcp --dport 7777 -j DNAT --to-destination 10.0.0.4:7777",
    ]
    assert "-A XHA_PRE -p tcp --dport 80 -j DNAT --to-destination 10.0.0.4:8080" in rules
    assert "-A XHA_POST -p tcp -d 10.0.0.3 --dport 8080 -j MASQUERADE" in rules
    assert rules[0] == "*nat" and rules[-1] == "COMMIT"


def test_only_a_balancing_data_plane_runs_the_program():
    with pytest.raises(ValueError):
        balanced_process("socat", [(1, 1)], "round_robin", DEFAULT_HEALTH)


def test_a_balancing_ambassador_forgets_unanswered_connection_attempts_within_seconds():
    # Not after the kernel's 120 s: a client reusing the port of an attempt to a replica since taken out would
    # be sent there again (tests/integration/test_replicas.py proves it on the lab).
    sysctls = balanced_process("kernel", [(1, 1)], "failover", DEFAULT_HEALTH)["sysctls"]
    assert sysctls["net.netfilter.nf_conntrack_tcp_timeout_syn_sent"] == "3"
    assert sysctls["net.ipv4.ip_forward"] == "1"
    # A single provider's kernel ambassador is left as it was: no recreation on upgrade.
    assert "net.netfilter.nf_conntrack_tcp_timeout_syn_sent" not in ambassador_process(
        "kernel", "tcp", [(1, 1)], "x")["sysctls"]


def _adopting(script, path, steps):
    """Run the balancing program's load and adopt functions (on a file at ``path``), then ``steps``."""
    functions = script.split("\nrules() {", maxsplit=1)[0].replace(REPLICAS_FILE, path)
    return subprocess.run(["sh", "-c", functions + "\n" + steps], check=True, capture_output=True, text=True).stdout


def test_a_delivered_list_is_adopted_and_replicas_that_stay_keep_their_state(tmp_path):
    script = balanced_script([(7777, 7777)], "round_robin", DEFAULT_HEALTH)
    path = str(tmp_path / "replicas")
    out = _adopting(script, path, "\n".join([
        "load || echo 'no file yet'",
        "printf '%s' > " + path,  # the file half written: no end mark
        "load || echo 'half written'",
        "printf '%s' > " + path,
        "load && adopt",
        "up_1=0",  # 10.0.0.3 was found down
        "printf '%s' > " + path,
        "load && adopt",
        'echo "now $replicas: $up_0 $up_1 $up_2"',
    ]) % ("10.0.0.2 10.0.0.3", addresses_text(["10.0.0.2", "10.0.0.3"]), addresses_text(["10.0.0.4", "10.0.0.3", "10.0.0.2"])))
    assert out.splitlines() == [
        "no file yet",
        "half written",
        "crosshost.ambassador: replicas: 10.0.0.2 10.0.0.3",
        "crosshost.ambassador: replicas: 10.0.0.4 10.0.0.3 10.0.0.2",
        # The new replica starts up, 10.0.0.3 stays down (now second), 10.0.0.2 stays up.
        "now 10.0.0.4 10.0.0.3 10.0.0.2: 1 0 1",
    ]


def test_a_new_replica_list_is_delivered_to_the_ambassador_that_stays():
    before = plan_topology({"api": dict(API, hosts=["host2", "host3"])}, hosts(host1=["api"]))["host1"]
    after = plan_topology({"api": dict(API)}, hosts(host1=["api"]))["host1"]
    made = decide(before["containers"], [], network="ambassador", networks=["ambassador"])
    assert [(a["action"], a["files"]) for a in made["actions"]] == [
        ("create", {REPLICAS_FILE: "10.0.0.2 10.0.0.3 end\n"})]
    spec = made["actions"][0]["spec"]
    existing = [{"id": "c1", "name": "api_ambassador", "labels": labels_for(spec), "state": "running", "ports": [],
                 "files": {REPLICAS_FILE: "10.0.0.2 10.0.0.3 end\n"}}]
    assert decide(before["containers"], existing)["unchanged"] == ["api_ambassador"]
    changed = decide(after["containers"], existing)
    assert [(s["action"], s["phase"], s["files"]) for s in changed["steps"]] == [
        ("deliver", "switch", {REPLICAS_FILE: "10.0.0.2 10.0.0.3 10.0.0.4 end\n"})]
    assert changed["files_before"] == {"api_ambassador": {REPLICAS_FILE: "10.0.0.2 10.0.0.3 end\n"}}
    # A file lost (absent), and a stopped container: both put right, the container kept.
    lost = [dict(existing[0], state="exited", files={REPLICAS_FILE: None})]
    assert [a["action"] for a in decide(after["containers"], lost)["actions"]] == ["deliver", "start"]
