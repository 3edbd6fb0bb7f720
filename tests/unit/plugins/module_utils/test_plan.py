"""The planner and its validation, on plain data (no Docker, no Ansible)."""

import pytest

from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import ALLOW_FILE, allowed_script
from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import link_environment, plan_topology
from ansible_collections.crosshost.ambassador.plugins.module_utils._topology import (
    DEFAULT_IMAGE, DEFAULT_NETWORK, TopologyError, parse_placement)

ADDR = {"host1": "10.0.0.1", "host2": "10.0.0.2", "host3": "10.0.0.3"}


def hosts(**consumes):
    return dict((h, {"advertise_address": a, "consumes": consumes.get(h, [])}) for h, a in ADDR.items())


def by_name(plan):
    return dict((c["name"], c) for c in plan["containers"])


def problems(services, host_settings=None, groups=None, **kwargs):
    with pytest.raises(TopologyError) as err:
        plan_topology(services, host_settings if host_settings is not None else hosts(), groups=groups, **kwargs)
    return [str(p) for p in err.value.problems]


def test_classic_redis_on_host2_consumed_from_host1():
    plans = plan_topology({"redis": {"host": "host2", "port": 6379, "image": "redis:7"}}, hosts(host1=["redis"]))

    consumer = by_name(plans["host1"])
    assert list(consumer) == ["redis_ambassador"]
    amb = consumer["redis_ambassador"]
    assert amb["side"] == "consumer" and amb["aliases"] == ["redis"] and amb["published"] == []
    assert amb["entrypoint"] == ["socat"]
    assert amb["command"] == ["-b", "65536", "TCP-LISTEN:6379,fork,reuseaddr,backlog=4096,nodelay", "TCP:10.0.0.2:6379,nodelay"]
    assert amb["env"] == {"REDIS_PORT_6379_TCP": "tcp://10.0.0.2:6379"}
    assert amb["image"] == DEFAULT_IMAGE and amb["network"] == DEFAULT_NETWORK
    assert amb["restart_policy"] == "unless-stopped"

    provider = by_name(plans["host2"])
    assert sorted(provider) == ["redis", "redis_ambassador"]
    assert provider["redis"]["kind"] == "service" and provider["redis"]["image"] == "redis:7"
    pamb = provider["redis_ambassador"]
    assert pamb["side"] == "provider" and pamb["aliases"] == []
    # Only host1, the one consumer, may connect; the port is published on the advertise address only.
    # -d: socat logs each refused peer (what probe reads to say "refused by the provider's allow-list").
    assert pamb["command"] == ["-d", "-b", "65536", "TCP-LISTEN:6379,fork,reuseaddr,backlog=4096,nodelay,range=10.0.0.1/32",
                               "TCP:redis:6379,nodelay"]
    assert pamb["published"] == [{"host_ip": "10.0.0.2", "host_port": 6379, "port": 6379, "protocol": "tcp"}]
    # Ambassadors run hardened; the service container runs as its image says.
    for ct in (amb, pamb):
        assert ct["user"] == "65534:65534" and ct["read_only"] is True and ct["cap_drop"] == ["ALL"]
        assert ct["security_opt"] == ["no-new-privileges:true"] and ct["memory"] > 0 and ct["pids_limit"] > 0
    assert provider["redis"]["user"] is None and provider["redis"]["cap_drop"] == []

    assert plans["host3"]["containers"] == []
    assert plans["host1"]["consumes"] == ["redis"] and plans["host2"]["provides"] == ["redis"]


def test_environment_names_the_alias_and_does_not_change_when_the_service_moves():
    before = plan_topology({"redis": {"host": "host2", "port": 6379}}, hosts(host1=["redis"]))
    after = plan_topology({"redis": {"host": "host3", "port": 6379}}, hosts(host1=["redis"]))
    assert before["host1"]["environment"] == after["host1"]["environment"] == {
        "REDIS_PORT": "tcp://redis:6379",
        "REDIS_PORT_6379_TCP": "tcp://redis:6379",
        "REDIS_PORT_6379_TCP_ADDR": "redis",
        "REDIS_PORT_6379_TCP_PORT": "6379",
        "REDIS_PORT_6379_TCP_PROTO": "tcp",
    }
    # ...while the consumer-side ambassador's target follows the service.
    assert by_name(after["host1"])["redis_ambassador"]["command"][-1] == "TCP:10.0.0.3:6379,nodelay"


def test_moving_a_service_changes_only_its_own_containers():
    services = {"redis": {"host": "host2", "port": 6379, "image": "redis:7"},
                "echo": {"host": "host1", "port": 7777, "consumers": ["host2", "host3"]}}
    before = plan_topology(services, hosts(host1=["redis"]))
    services["redis"] = dict(services["redis"], host="host3")
    after = plan_topology(services, hosts(host1=["redis"]))
    for host in ADDR:
        b, a = by_name(before[host]), by_name(after[host])
        for name in set(b) | set(a):
            if b.get(name) != a.get(name):
                assert name.startswith("redis"), (host, name)
    assert "redis" not in by_name(after["host2"]) and "redis" in by_name(after["host3"])


def test_local_consumer_needs_no_ambassador_and_unconsumed_service_publishes_nothing():
    plans = plan_topology({"redis": {"host": "host2", "port": 6379, "image": "redis:7"}}, hosts(host2=["redis"]))
    assert list(by_name(plans["host2"])) == ["redis"]
    assert plans["host2"]["environment"]["REDIS_PORT_6379_TCP"] == "tcp://redis:6379"


def test_consumers_by_group_and_published_ports_and_udp():
    plans = plan_topology(
        {"dns": {"host": "host1", "ports": [53, 5353], "published": [1053, 15353], "protocol": "udp",
                 "consumers": ["clients"]}},
        hosts(), groups={"clients": ["host2", "host3"]})
    pamb = by_name(plans["host1"])["dns_ambassador"]
    assert [(p["host_port"], p["port"], p["protocol"]) for p in pamb["published"]] == [(1053, 53, "udp"), (15353, 5353, "udp")]
    camb = by_name(plans["host3"])["dns_ambassador"]
    # Two ports: one socat each under a shell, with an init process.
    assert camb["entrypoint"] == ["/bin/sh", "-c"] and camb["init"] is True
    assert camb["command"] == ["socat -b 65536 UDP-RECVFROM:53,fork,reuseaddr UDP-SENDTO:10.0.0.1:1053 & "
                               "socat -b 65536 UDP-RECVFROM:5353,fork,reuseaddr UDP-SENDTO:10.0.0.1:15353 & wait"]
    assert camb["env"] == {"DNS_PORT_53_UDP": "udp://10.0.0.1:1053", "DNS_PORT_5353_UDP": "udp://10.0.0.1:15353"}
    assert plans["host2"]["environment"]["DNS_PORT_5353_UDP_PROTO"] == "udp"


def test_user_run_container_with_another_name_gets_an_alias_on_its_host():
    plans = plan_topology({"db": {"host": "host2", "port": 5432, "container": "postgres-main"}},
                          hosts(host1=["db"], host2=["db"]))
    pamb = by_name(plans["host2"])["db_ambassador"]
    assert pamb["aliases"] == ["db"] and pamb["target"] == "postgres-main"
    assert pamb["command"][-1] == "TCP:postgres-main:5432,nodelay"
    assert "db" not in by_name(plans["host2"])  # the user runs it


def test_host_settings_and_ipv6_advertise_address():
    settings = hosts(host1=["redis"])
    settings["host2"] = {"advertise_address": "fd00::2", "network": "appnet", "image": "my/socat:1",
                         "docker": {"host": "tcp://10.0.0.2:2376"}}
    plans = plan_topology({"redis": {"host": "host2", "port": 6379}}, settings)
    assert plans["host2"]["network"] == "appnet" and plans["host2"]["docker_host"] == "tcp://10.0.0.2:2376"
    assert by_name(plans["host2"])["redis_ambassador"]["image"] == "my/socat:1"
    assert by_name(plans["host1"])["redis_ambassador"]["command"][-1] == "TCP:[fd00::2]:6379,nodelay"


def test_connection_settings_travel_in_the_plan_and_local_hosts_files_are_checked():
    settings = hosts(host1=["redis"])
    settings["host2"] = {"advertise_address": "10.0.0.2", "local": True,
                         "docker": {"host": "tcp://10.0.0.2:2376", "tls_verify": True, "ca_path": "/pki/ca.pem"}}
    services = {"redis": {"host": "host2", "port": 6379}}
    plans = plan_topology(services, settings)
    assert plans["host2"]["docker"]["host"] == "tcp://10.0.0.2:2376" and plans["host2"]["docker"]["ca_path"] == "/pki/ca.pem"
    assert plans["host1"]["docker_host"] is None and plans["host1"]["docker"]["tls_verify"] is None
    with pytest.raises(TopologyError) as failed:
        plan_topology(services, settings, file_exists=lambda path: False)
    assert [str(p) for p in failed.value.problems] == [
        "host2: ambassador_docker_ca_path: /pki/ca.pem does not exist. Fix: create it, or correct the path."]
    settings["host2"]["local"] = False  # the module runs on host2: its files are checked there
    assert plan_topology(services, settings, file_exists=lambda path: False)


def test_several_consumers_are_allowed_by_a_peer_address_check():
    plans = plan_topology({"echo": {"host": "host1", "port": 7, "consumers": ["host3", "host2"]}}, hosts())
    _d, _b, _size, listen, connect = by_name(plans["host1"])["echo_ambassador"]["command"]
    assert listen == "TCP-LISTEN:7,fork,reuseaddr,backlog=4096,nodelay"
    assert connect == ("SYSTEM:test $SOCAT_PEERADDR = 10.0.0.2 -o $SOCAT_PEERADDR = 10.0.0.3 "
                       "&& exec socat -b 65536 - TCP\\:echo\\:7\\,nodelay\\; echo \\\"W refusing connection from "
                       "$SOCAT_PEERADDR\\:$SOCAT_PEERPORT due to the allow-list\\\" >&2,nofork")


def test_source_and_bind_addresses_override_the_advertise_address():
    settings = hosts(host1=["redis"])
    settings["host1"]["source_address"] = "192.0.2.1"
    settings["host2"].update(advertise_address="db.example.net", bind_address="0.0.0.0")
    plans = plan_topology({"redis": {"host": "host2", "port": 6379}}, settings)
    pamb = by_name(plans["host2"])["redis_ambassador"]
    assert pamb["command"][3].endswith(",range=192.0.2.1/32")
    assert pamb["published"][0]["host_ip"] == "0.0.0.0"
    assert by_name(plans["host1"])["redis_ambassador"]["command"][-1] == "TCP:db.example.net:6379,nodelay"


def test_several_ports_quote_each_socat_address_for_the_shell():
    plans = plan_topology({"web": {"host": "host1", "ports": [80, 443], "consumers": ["host2", "host3"]}}, hosts())
    (script,) = by_name(plans["host1"])["web_ambassador"]["command"]
    assert script.startswith("socat -d -b 65536 TCP-LISTEN:80,fork,reuseaddr,backlog=4096,nodelay 'SYSTEM:test "
                             "$SOCAT_PEERADDR = 10.0.0.2 -o $SOCAT_PEERADDR = 10.0.0.3 && exec socat -b 65536 - "
                             "TCP\\:web\\:80\\,nodelay\\; echo \\\"W refusing connection from "
                             "$SOCAT_PEERADDR\\:$SOCAT_PEERPORT due to the allow-list\\\" >&2,nofork' & socat")


def test_mutual_tls_between_ambassadors():
    services = {"redis": {"host": "host2", "port": 6379},
                "dns": {"host": "host2", "port": 53, "protocol": "udp", "consumers": ["host1"]}}
    plans = plan_topology(services, hosts(host1=["redis"]), tls=True)
    provider = by_name(plans["host2"])["redis_ambassador"]
    assert provider["command"] == [
        "-d", "-b", "65536", "OPENSSL-LISTEN:6379,fork,reuseaddr,backlog=4096,nodelay,cert=/tls/cert.pem,key=/tls/key.pem,"
        "cafile=/tls/ca.pem,verify=1,range=10.0.0.1/32", "TCP:redis:6379,nodelay"]
    consumer = by_name(plans["host1"])["redis_ambassador"]
    assert consumer["command"][3] == ("OPENSSL:10.0.0.2:6379,nodelay,cert=/tls/cert.pem,key=/tls/key.pem,"
                                      "cafile=/tls/ca.pem,verify=1,commonname=host2")
    assert provider["tls"] and consumer["tls"] and provider["volumes"] == ["/etc/crosshost-ambassador/tls/host2:/tls:ro"]
    # udp services stay plain; hosts without TLS ambassadors need no files.
    assert not by_name(plans["host2"])["dns_ambassador"]["tls"]
    assert plans["host2"]["tls_dir"] == "/etc/crosshost-ambassador/tls/host2" and plans["host3"]["tls_dir"] is None
    # A service may opt out, and "true" from -e or a survey counts as true.
    plans = plan_topology({"redis": {"host": "host2", "port": 6379, "tls": False}}, hosts(host1=["redis"]), tls="true")
    assert not by_name(plans["host1"])["redis_ambassador"]["tls"] and plans["host1"]["tls_dir"] is None


def test_empty_topology_plans_nothing():
    plans = plan_topology({}, hosts())
    assert all(p["containers"] == [] for p in plans.values())


@pytest.mark.parametrize("services, settings, expected", [
    (None, None, "ambassador_services: is not defined"),
    ([1], None, "ambassador_services: must be a mapping"),
    ({"redis": {"port": 6379}}, None, "ambassador_services.redis.host: is required"),
    ({"redis": {"host": "nowhere", "port": 6379}}, None, "ambassador_services.redis.host: host 'nowhere' is not in the inventory"),
    ({"redis": {"host": "host2", "port": 70000}}, None, "ambassador_services.redis.port: 70000 is out of range"),
    ({"redis": {"host": "host2", "port": 0}}, None, "ambassador_services.redis.port: 0 is out of range"),
    ({"redis": {"host": "host2", "port": "6379"}}, None, "ambassador_services.redis.port: '6379' is not a port number"),
    ({"redis": {"host": "host2"}}, None, "ambassador_services.redis: needs exactly one of port or ports"),
    ({"redis": {"host": "host2", "port": 1, "prot": 2}}, None, "ambassador_services.redis.prot: unknown setting"),
    ({"Redis": {"host": "host2", "port": 1}}, None, "ambassador_services.Redis: 'Redis' is not a valid service name"),
    ({"my-db": {"host": "host2", "port": 1}, "my_db": {"host": "host3", "port": 2}}, None,
     "ambassador_services.my_db: folds to the same variable prefix MY_DB_"),
    ({"redis": {"host": "host2", "port": 1, "protocol": "sctp"}}, None, "ambassador_services.redis.protocol: 'sctp' is not a protocol"),
    ({"redis": {"host": "host2", "port": 1, "consumers": ["ghost"]}}, None,
     "ambassador_services.redis.consumers[0]: 'ghost' is neither an inventory host nor a group"),
    ({"aa": {"host": "host2", "port": 80, "consumers": ["host1"]},
      "bb": {"host": "host2", "port": 81, "published": 80, "consumers": ["host1"]}}, None,
     "ambassador_services.bb.published: tcp port 80 on host2 is already published for service 'aa'"),
    ({"r": {"host": "host2", "port": 1}}, None, "ambassador_services.r: 'r' is not a valid service name"),
    ({"redis": {"host": "host2", "port": 1}}, {"host1": {"consumes": ["nosuch"]}, "host2": {}},
     "host1: ambassador_consumes[0]: service 'nosuch' is not defined in ambassador_services"),
    ({"redis": {"host": "host2", "port": 1}}, {"host1": {"consumes": ["redis"]}, "host2": {}},
     "host2: ambassador_advertise_address: is not set"),
    ({"redis": {"host": "host2", "port": 1, "command": "x"}}, None, "ambassador_services.redis.command: is only used when"),
    ({"redis": {"host": "host2", "port": 1, "image": "r", "container": "x"}}, None,
     "ambassador_services.redis.container: cannot be combined with image"),
    ({"redis": {"host": "host2", "ports": [1, 1]}}, None, "ambassador_services.redis.ports: ports [1] are listed more than once"),
    ({"redis": {"host": "host2", "ports": [1, 2], "published": [3]}}, None, "ambassador_services.redis.published: has 1 port(s)"),
    ({"redis": {"host": "host2", "port": 1}}, {"host2": {"network": "bad name"}}, "host2: ambassador_network: 'bad name'"),
    ({"redis": {"host": "host2", "port": 1}}, {"host2": {"docker": {"host": "/var/run/docker.sock"}}},
     "host2: ambassador_docker_host: '/var/run/docker.sock' is not a Docker API URL"),
    ({"redis": {"host": "host2", "port": 1}}, {"host1": {"consumes": "redis"}, "host2": {"advertise_address": "10.0.0.2"}},
     "host1: ambassador_consumes: must be a list of service name"),
    ({"redis": {"host": "host2", "port": 1, "consumers": ["host1"]}}, {"host1": {}, "host2": {"advertise_address": "0.0.0.0"}},
     "host2: ambassador_advertise_address: 0.0.0.0 cannot be connected to"),
    ({"redis": {"host": "host2", "port": 1, "consumers": ["host1"]}},
     {"host1": {"advertise_address": "web1.example.net"}, "host2": {"advertise_address": "10.0.0.2"}},
     "host1: ambassador_source_address: is not set and the advertise address 'web1.example.net' is not an IP"),
    ({"redis": {"host": "host2", "port": 1, "consumers": ["host1"]}},
     {"host1": {"advertise_address": "10.0.0.1"}, "host2": {"advertise_address": "db.example.net"}},
     "host2: ambassador_bind_address: is not set and the advertise address 'db.example.net' is a name"),
    ({"redis": {"host": "host2", "port": 1, "consumers": ["host1"]}},
     {"host1": {"advertise_address": "10.0.0.1"}, "host2": {"advertise_address": "10.0.0.2", "bind_address": "eth0"}},
     "host2: ambassador_bind_address: 'eth0' is not an IP address"),
])
def test_invalid_topologies_name_the_variable_and_the_fix(services, settings, expected):
    found = problems(services, settings)
    assert any(p.startswith(expected) for p in found), found
    assert all(". Fix: " in p for p in found)


def test_every_problem_is_reported_at_once():
    found = problems({"aa": {"host": "nowhere", "port": 0}, "bb": {"port": "x"}}, hosts(host1=["cc"]))
    assert len(found) == 5, found


def test_a_service_named_like_another_ambassador_is_refused():
    found = problems({"redis": {"host": "host2", "port": 1, "consumers": ["host1"]},
                      "redis_ambassador": {"host": "host2", "port": 2, "image": "x"}})
    assert any("is also the ambassador of service 'redis'" in p for p in found), found


def test_link_environment_folds_dashes():
    env = link_environment("my-db", [5432], "tcp")
    assert env["MY_DB_PORT_5432_TCP_ADDR"] == "my-db"


# ---- Placement overrides (ambassador_placement_overrides: extra vars, AWX surveys) ----

REDIS = {"redis": {"host": "host2", "port": 6379, "image": "redis:7"}}


@pytest.mark.parametrize("value, expected", [
    (None, {}),
    ("", {}),
    ({}, {}),
    ({"redis": "host3"}, {"redis": "host3"}),
    ("redis=host3", {"redis": "host3"}),
    (" redis=host3, echo=host1 ", {"redis": "host3", "echo": "host1"}),
    ("redis=host3 echo=host1", {"redis": "host3", "echo": "host1"}),
    (" redis = host3 ", {"redis": "host3"}),
    ("redis =host3,echo= host1", {"redis": "host3", "echo": "host1"}),
])
def test_placement_is_read_from_a_mapping_or_survey_text(value, expected):
    assert parse_placement(value) == (expected, [])


@pytest.mark.parametrize("value, message", [
    ("redis", "ambassador_placement_overrides: 'redis' is not service=host. Fix: write e.g. redis=host3"),
    ("redis=", "ambassador_placement_overrides: 'redis=' is not service=host"),
    (["redis=host3"], "ambassador_placement_overrides: must be a mapping {service: host} or text service=host, got list"),
    ("redis=host3,redis=host1", "ambassador_placement_overrides.redis: is given twice (host3 and host1)"),
    ({"redis": 3}, "ambassador_placement_overrides.redis: 3 is not a host name"),
    ({5: "host3"}, "ambassador_placement_overrides.5: 5 is not a service name. Fix: give the name of a service"),
])
def test_malformed_placement_is_a_problem(value, message):
    overrides, found = parse_placement(value)
    # A service given twice keeps its first host; anything else malformed overrides nothing.
    assert overrides == ({"redis": "host3"} if "twice" in message else {})
    assert any(str(p).startswith(message) for p in found), found


def test_a_placement_override_moves_the_service_and_its_ambassadors():
    plans = plan_topology(REDIS, hosts(host1=["redis"]), placement="redis=host3")
    assert by_name(plans["host3"])["redis"]["kind"] == "service"
    assert by_name(plans["host3"])["redis_ambassador"]["published"][0]["host_ip"] == ADDR["host3"]
    assert "redis" not in by_name(plans["host2"])
    assert by_name(plans["host1"])["redis_ambassador"]["command"][-1] == "TCP:%s:6379,nodelay" % ADDR["host3"]
    # The same as writing host: host3 in the inventory.
    assert plans == plan_topology({"redis": dict(REDIS["redis"], host="host3")}, hosts(host1=["redis"]))


def test_a_placement_override_to_the_current_host_changes_nothing():
    assert plan_topology(REDIS, hosts(host1=["redis"]), placement={"redis": "host2"}) == \
        plan_topology(REDIS, hosts(host1=["redis"]))


def test_placement_overrides_naming_unknown_services_or_hosts_fail_the_whole_plan():
    assert problems(REDIS, hosts(host1=["redis"]), placement="redis=nosuchhost,cache=host1") == [
        "ambassador_placement_overrides.cache: service 'cache' is not defined in ambassador_services. "
        "Fix: move one of: redis.",
        "ambassador_placement_overrides.redis: host 'nosuchhost' is not in the inventory. "
        "Fix: move the service to one of the inventory's hosts.",
    ]


def test_an_override_naming_no_service_is_a_problem_even_beside_a_service_named_by_a_number():
    # YAML reads `5:` as an int: the names listed in the fix must not break on it.
    found = problems({"redis": REDIS["redis"], 5: dict(REDIS["redis"])}, hosts(host1=["redis"]), placement="cache=host1")
    assert "ambassador_placement_overrides.cache: service 'cache' is not defined in ambassador_services. " \
        "Fix: move one of: 5, redis." in found
    assert any(p.startswith("ambassador_services.5: 5 is not a valid service name") for p in found), found


# ---- data planes ----

def kernel_hosts(**consumes):
    settings = hosts(**consumes)
    for h in settings.values():
        h["kernel_image"] = "my/kernel:1"
    return settings


def test_socat_is_the_default_data_plane_and_needs_no_privilege():
    plans = plan_topology({"redis": {"host": "host2", "port": 6379}}, hosts(host1=["redis"]))
    for host in ("host1", "host2"):
        amb = by_name(plans[host])["redis_ambassador"]
        assert amb["dataplane"] == "socat" and amb["cap_add"] == [] and amb["sysctls"] == {}
        assert amb["image"] == DEFAULT_IMAGE and amb["entrypoint"] == ["socat"]


def test_kernel_data_plane_per_service_with_the_same_names_aliases_and_ports():
    services = {"redis": {"host": "host2", "port": 6379, "dataplane": "kernel"}, "web": {"host": "host2", "port": 80}}
    plans = plan_topology(services, kernel_hosts(host1=["redis", "web"]))
    consumer = by_name(plans["host1"])
    amb = consumer["redis_ambassador"]
    assert amb["dataplane"] == "kernel" and amb["image"] == "my/kernel:1"
    assert amb["aliases"] == ["redis"] and amb["env"] == {"REDIS_PORT_6379_TCP": "tcp://10.0.0.2:6379"}
    assert amb["cap_add"] == ["NET_ADMIN"] and amb["sysctls"]["net.ipv4.ip_forward"] == "1"
    assert amb["entrypoint"] == ["/bin/sh", "-c"] and amb["init"] is True
    script = amb["command"][0]
    assert "target='10.0.0.2'" in script
    assert "-A XHA_PRE -p tcp --dport 6379 -j DNAT --to-destination $ip:6379" in script
    assert "-A XHA_POST -p tcp -d $ip --dport 6379 -j MASQUERADE" in script
    assert consumer["web_ambassador"]["dataplane"] == "socat"  # the other service keeps the default
    provider = by_name(plans["host2"])["redis_ambassador"]
    assert provider["dataplane"] == "kernel" and "target='redis'" in provider["command"][0]
    assert provider["published"] == [{"host_ip": "10.0.0.2", "host_port": 6379, "port": 6379, "protocol": "tcp"}]
    assert plans["host1"]["environment"]["REDIS_PORT_6379_TCP"] == "tcp://redis:6379"


def test_global_data_plane_and_a_service_that_overrides_it():
    services = {"redis": {"host": "host2", "port": 6379}, "dns": {"host": "host2", "port": 53, "published": 1053,
                                                                  "protocol": "udp", "dataplane": "socat"}}
    plans = plan_topology(services, kernel_hosts(host1=["redis", "dns"]), dataplane="kernel")
    consumer = by_name(plans["host1"])
    assert consumer["redis_ambassador"]["dataplane"] == "kernel"
    assert consumer["dns_ambassador"]["dataplane"] == "socat"


def test_kernel_data_plane_forwards_udp_and_several_ports():
    services = {"dns": {"host": "host2", "ports": [53, 5353], "published": [1053, 15353], "protocol": "udp",
                        "dataplane": "kernel"}}
    script = by_name(plan_topology(services, kernel_hosts(host1=["dns"]))["host1"])["dns_ambassador"]["command"][0]
    assert "-A XHA_PRE -p udp --dport 53 -j DNAT --to-destination $ip:1053" in script
    assert "-A XHA_PRE -p udp --dport 5353 -j DNAT --to-destination $ip:15353" in script
    assert "-A XHA_POST -p udp -d $ip --dport 15353 -j MASQUERADE" in script


def test_moving_a_kernel_service_changes_only_its_target():
    before = plan_topology({"redis": {"host": "host2", "port": 6379, "dataplane": "kernel"}},
                           kernel_hosts(host1=["redis"]))
    after = plan_topology({"redis": {"host": "host3", "port": 6379, "dataplane": "kernel"}},
                          kernel_hosts(host1=["redis"]))
    b, a = by_name(before["host1"])["redis_ambassador"], by_name(after["host1"])["redis_ambassador"]
    assert b["command"][0].replace("10.0.0.2", "10.0.0.3") == a["command"][0]
    assert b["aliases"] == a["aliases"] and b["name"] == a["name"]


def test_kernel_ambassadors_let_in_only_their_consumers_and_keep_what_hardening_they_can():
    plans = plan_topology({"redis": {"host": "host2", "port": 6379, "dataplane": "kernel",
                                     "consumers": ["host1", "host3"]}}, kernel_hosts())
    provider = by_name(plans["host2"])["redis_ambassador"]
    # The peers are a file delivered to it, not part of its command (tests/unit/.../test_dataplane.py runs it).
    assert provider["files"] == {ALLOW_FILE: "10.0.0.1 10.0.0.3 end\n"}
    assert provider["command"] == [allowed_script("tcp", [(6379, 6379)], "redis")]
    assert "10.0.0." not in provider["command"][0]
    # iptables needs root and NET_ADMIN in the ambassador's own namespace; every other capability goes.
    assert provider["user"] is None and provider["cap_drop"] == ["ALL"] and provider["cap_add"] == ["NET_ADMIN"]
    assert provider["security_opt"] == ["no-new-privileges:true"] and provider["pids_limit"] > 0


def test_the_kernel_data_plane_cannot_speak_tls():
    found = problems({"redis": {"host": "host2", "port": 6379, "dataplane": "kernel", "consumers": ["host1"]}},
                     kernel_hosts(), tls=True)
    assert found == ["ambassador_services.redis.tls: the kernel data plane forwards packets and cannot speak TLS "
                     "(asked for by ambassador_tls). Fix: use dataplane: socat for redis, or set tls: false on it."]


@pytest.mark.parametrize("services, settings, dataplane, expected", [
    ({"redis": {"host": "host2", "port": 1, "dataplane": "ebpf"}}, None, None,
     "ambassador_services.redis.dataplane: 'ebpf' is not a data plane. Fix: use socat or kernel"),
    ({"redis": {"host": "host2", "port": 1}}, None, "haproxy",
     "ambassador_dataplane: 'haproxy' is not a data plane. Fix: use socat or kernel"),
    ({"redis": {"host": "host2", "port": 1, "dataplane": "kernel"}}, hosts(host1=["redis"]), None,
     "host1: ambassador_kernel_image: is not set, yet service 'redis' uses the kernel data plane"),
    ({"redis": {"host": "host2", "port": 1, "dataplane": "kernel", "consumers": ["host1"]}},
     {"host1": {"kernel_image": "k"}, "host2": {"advertise_address": "fd00::2", "kernel_image": "k"}}, None,
     "ambassador_services.redis.dataplane: the kernel data plane forwards IPv4 only"),
    ({"redis": {"host": "host2", "port": 1}}, {"host2": {"kernel_image": "bad image"}}, None,
     "host2: ambassador_kernel_image: 'bad image' is not an image reference"),
])
def test_invalid_data_planes_name_the_variable_and_the_fix(services, settings, dataplane, expected):
    found = problems(services, settings, dataplane=dataplane)
    assert any(p.startswith(expected) for p in found), found
    assert all(". Fix: " in p for p in found)


def test_a_host_without_kernel_ambassadors_needs_no_kernel_image():
    plans = plan_topology({"redis": {"host": "host2", "port": 1, "dataplane": "kernel"}}, hosts())
    assert by_name(plans["host2"]) == {}  # no consumers: no ambassador, no kernel image needed
    # Nor when the service runs in a container of its own name: no consumer needs its alias.
    plans = plan_topology({"redis": {"host": "host2", "port": 1, "dataplane": "kernel", "container": "my-redis"}},
                          hosts())
    assert by_name(plans["host2"]) == {}


# ---- How a service moves, and what the coordinating steps need to know of the topology ----

def test_a_service_with_volumes_moves_stop_first_unless_told_otherwise():
    services = {
        "redis": {"host": "host2", "port": 6379, "image": "redis:7", "volumes": ["redis-data:/data"]},
        "cache": {"host": "host2", "port": 6380, "image": "redis:7", "volumes": ["c:/data"],
                  "move": "make_before_break"},
        "web": {"host": "host1", "port": 80, "image": "nginx", "move": "stop_first"},
        "echo": {"host": "host1", "port": 7777, "image": "echo"},
        "theirs": {"host": "host3", "port": 9000},
    }
    summary = {}
    plan_topology(services, hosts(host1=["redis"], host3=["echo"]), summary=summary)
    assert summary["stop_first"] == ["redis", "web"]
    assert summary["service_hosts"]["redis"] == ["host1", "host2"] and summary["service_hosts"]["echo"] == ["host1", "host3"]
    assert summary["service_hosts"]["theirs"] == ["host3"]


def test_a_bad_move_setting_names_the_choices():
    found = problems({"redis": {"host": "host2", "port": 6379, "image": "redis:7", "move": "swap"}})
    assert found == ["ambassador_services.redis.move: 'swap' is not a way to move. Fix: use make_before_break (the "
                     "new place first) or stop_first (the old one stops first: for services that keep data)."]
    found = problems({"redis": {"host": "host2", "port": 6379, "move": "stop_first"}})
    assert found[0].startswith("ambassador_services.redis.move: is only used when the collection runs the service")


def test_each_plan_names_the_hosts_ambassador_image():
    plans = plan_topology(REDIS, dict(hosts(), host3={"advertise_address": "10.0.0.3", "image": "mine:1"}))
    assert plans["host1"]["image"] == DEFAULT_IMAGE and plans["host3"]["image"] == "mine:1"
