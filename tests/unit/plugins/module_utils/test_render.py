"""The topology picture, as DOT text, from real plans (no Graphviz, no Docker)."""

import re

from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import plan_topology
from ansible_collections.crosshost.ambassador.plugins.module_utils._render import render_dot

SERVICES = {
    "redis": {"host": "host2", "port": 6379, "image": "redis:7"},
    "echo": {"host": "host1", "port": 7777, "image": "echo:1", "consumers": ["host2", "host3"]},
    "dns": {"host": "host3", "port": 53, "protocol": "udp", "container": "bind", "consumers": ["host1"]},
}
HOSTS = {
    "host1": {"advertise_address": "10.0.0.1", "consumes": ["redis", "echo"]},
    "host2": {"advertise_address": "10.0.0.2"},
    "host3": {"advertise_address": "10.0.0.3"},
}


def edges(dot):
    return set(re.findall(r'^  "([^"]+)" -> "([^"]+)"', dot, re.M))


def node_line(dot, node):
    (line,) = [ln for ln in dot.splitlines() if ln.strip().startswith('"%s" [' % node)]
    return line


def test_every_path_runs_apps_consumer_ambassador_endpoint_provider_ambassador_service():
    dot = render_dot(plan_topology(SERVICES, HOSTS), title="lab")
    assert dot.startswith("digraph topology {") and dot.rstrip().endswith("}")
    assert {
        ("host1/apps", "host1/redis_ambassador"),
        ("host1/redis_ambassador", "10.0.0.2:6379"),
        ("10.0.0.2:6379", "host2/redis_ambassador"),
        ("host2/redis_ambassador", "host2/redis"),
        # echo is placed on host1 and used there too: straight to the service.
        ("host1/apps", "host1/echo"),
        ("host2/echo_ambassador", "10.0.0.1:7777"),
        ("host3/echo_ambassador", "10.0.0.1:7777"),
        ("10.0.0.1:7777", "host1/echo_ambassador"),
        # A udp service the user runs as container "bind".
        ("host1/dns_ambassador", "10.0.0.3:53/udp"),
        ("10.0.0.3:53/udp", "host3/dns_ambassador"),
        ("host3/dns_ambassador", "host3/bind"),
    } <= edges(dot)
    assert "publishes 10.0.0.2:6379" in node_line(dot, "host2/redis_ambassador")
    assert "alias redis" in node_line(dot, "host1/redis_ambassador")
    assert "your container" in node_line(dot, "host3/bind") and "dashed" in node_line(dot, "host3/bind")
    assert 'label="host2  (10.0.0.2)"' in dot and 'label="lab"' in dot
    # No change overlay without actions, nor when the next run does nothing.
    assert "[create]" not in dot and "next run" not in dot
    assert render_dot(plan_topology(SERVICES, HOSTS), {"host1": [], "host2": []}, title="lab") == dot


def test_before_a_move_the_containers_the_next_run_touches_are_marked():
    moved = plan_topology(SERVICES, HOSTS, placement="redis=host3")
    actions = {
        "host1": [{"action": "recreate", "kind": "container", "name": "redis_ambassador"}],
        "host2": [{"action": "remove", "kind": "container", "name": "redis"},
                  {"action": "remove", "kind": "container", "name": "redis_ambassador"}],
        "host3": [{"action": "create", "kind": "container", "name": "redis"},
                  {"action": "create", "kind": "network", "name": "ambassador"}],
    }
    dot = render_dot(moved, actions)
    assert "[recreate]" in node_line(dot, "host1/redis_ambassador") and "#ffd166" in node_line(dot, "host1/redis_ambassador")
    assert "[create]" in node_line(dot, "host3/redis")
    # Removed containers are no longer planned: drawn as dashed ghosts on their old host.
    assert "dashed" in node_line(dot, "host2/redis") and "[remove]" in node_line(dot, "host2/redis_ambassador")
    assert ("host1/redis_ambassador", "10.0.0.3:6379") in edges(dot)
    assert "next run:" in dot
    assert "host3/ambassador" not in dot  # a network action is not a container


def test_labels_are_quoted():
    plans = plan_topology({"my-db": {"host": "host2", "port": 5432, "image": 'db "quoted"'}},
                          dict(HOSTS, host1={"advertise_address": "10.0.0.1", "consumes": ["my-db"]}))
    assert 'image db \\"quoted\\"' in render_dot(plans)


def test_a_port_bound_to_every_address_is_still_reached_at_the_advertise_address():
    hosts = dict(HOSTS, host2={"advertise_address": "10.0.0.2", "bind_address": "0.0.0.0"})
    dot = render_dot(plan_topology(SERVICES, hosts))
    assert "publishes 0.0.0.0:6379" in node_line(dot, "host2/redis_ambassador")
    assert {("host1/redis_ambassador", "10.0.0.2:6379"), ("10.0.0.2:6379", "host2/redis_ambassador")} <= edges(dot)
