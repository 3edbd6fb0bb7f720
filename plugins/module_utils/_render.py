# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""Draw a topology: the plans of every host in, Graphviz DOT text out.

Plain functions over plain data (the ``plans`` that :func:`_plan.plan_topology`
returns, and optionally what ``apply`` reports it would do), no Ansible, no
Graphviz: the caller runs ``dot`` on the text.

The picture, one box per Docker host:

* the host's consumer containers ("apps"), as one node per host that consumes something;
* service containers (the collection's, or the user's own, dashed);
* ambassadors: a consumer-side one carries the service's name as alias, a
  provider-side one publishes ``advertise_address:port``;
* one node per published endpoint (``advertise_address:port``) on the network;
* arrows along the path a connection takes: apps -> consumer-side ambassador
  -> published endpoint -> provider-side ambassador -> service.

With ``actions`` (host -> list of ``{action, name}`` as ``apply`` returns them,
e.g. from a check-mode run before a move) the containers that the next run
creates, recreates or removes are coloured, and removed ones drawn as ghosts.
"""

from __future__ import annotations

from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import REPLICAS_FILE, addresses_of
from ansible_collections.crosshost.ambassador.plugins.module_utils._topology import ambassador_name

# Fill colours of containers by what the next run does to them.
ACTION_COLOURS = {"create": "#b7e4c7", "recreate": "#ffd166", "remove": "#f4a3a3", "start": "#cfe2ff"}
SERVICE_COLOUR = "#d0e6f7"
AMBASSADOR_COLOUR = "#f2f2f2"
NETWORK_COLOUR = "#1d3557"
LEGEND = "next run: green = create, yellow = recreate, red = remove (dashed), grey = unchanged"


def _quote(text):
    return '"%s"' % str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _node_id(host, name):
    return _quote("%s/%s" % (host, name))


def _attrs(**attrs):
    return "[%s]" % ", ".join("%s=%s" % (key, _quote(value)) for key, value in sorted(attrs.items()) if value is not None)


def _provider_of(plans):
    """service -> the host it is placed on."""
    providers = {}
    for host, plan in plans.items():
        for service in plan.get("provides", []):
            providers[service] = host
    return providers


def _port_text(container, address=None):
    """'address:port' (or 'address:port/udp') for each port a provider-side ambassador publishes.

    ``address`` replaces the address the port is bound to (e.g. the advertise address for 0.0.0.0).
    """
    ports = []
    for published in container.get("published") or []:
        suffix = "" if published["protocol"] == "tcp" else "/" + published["protocol"]
        ports.append("%s:%d%s" % (address or published["host_ip"], published["host_port"], suffix))
    return ports


def _provider_sides(plans):
    """service -> one of its provider-side ambassadors (every replica's publishes the same ports)."""
    found = {}
    for plan in plans.values():
        for ct in plan["containers"]:
            if ct.get("side") == "provider":
                found.setdefault(ct["service"], ct)
    return found


def _target_ports(container, provider_sides):
    """The endpoints a consumer-side ambassador forwards to, written like _port_text's: from its legacy env,
    or for a service on several hosts, each replica's (its delivered list, and what ``provider_sides``
    publish)."""
    endpoints = set()
    for value in (container.get("env") or {}).values():
        protocol, sep, address = str(value).partition("://")
        if sep:
            endpoints.add(address if protocol == "tcp" else "%s/%s" % (address, protocol))
    provider = provider_sides.get(container["service"])
    if provider is not None:
        for address in addresses_of((container.get("files") or {}).get(REPLICAS_FILE)) or []:
            endpoints.update(_port_text(provider, address))
    return sorted(endpoints)


def render_dot(plans, actions=None, title=None):
    """The DOT text of the topology described by ``plans`` (hostname -> plan).

    :param actions: optional hostname -> list of ``{"action", "name"}``; the
        containers named are coloured by action, removed ones drawn dashed.
    :param title: optional caption of the picture.
    """
    actions = actions or {}
    caption = "\n".join(part for part in (title, LEGEND if any(actions.values()) else None) if part)
    providers = _provider_of(plans)
    provider_sides = _provider_sides(plans)
    lines = [
        "digraph topology {",
        "  graph %s;" % _attrs(rankdir="LR", fontname="Helvetica", fontsize="12", nodesep="0.3", ranksep="0.6",
                               label=caption or None, labelloc="t"),
        "  node %s;" % _attrs(fontname="Helvetica", fontsize="10", shape="box", style="rounded,filled",
                              fillcolor=AMBASSADOR_COLOUR),
        "  edge %s;" % _attrs(fontname="Helvetica", fontsize="9"),
    ]
    edges = []
    endpoints = {}  # "address:port" -> provider-side ambassadors publishing it
    for index, host in enumerate(sorted(plans)):
        plan = plans[host]
        done = dict((a["name"], a["action"]) for a in actions.get(host, []) if a.get("kind", "container") == "container")
        planned = dict((c["name"], c) for c in plan["containers"])
        addresses = sorted(set([plan["advertise_address"]] if plan.get("advertise_address") else []) |
                           set(p["host_ip"] for c in plan["containers"] for p in c.get("published") or []))
        host_caption = host if not addresses else "%s  (%s)" % (host, ", ".join(addresses))
        lines.append("  subgraph %s {" % _quote("cluster_%d" % index))
        lines.append("    graph %s;" % _attrs(label=host_caption, style="rounded", color="#6c757d", fontsize="13"))
        if plan.get("consumes"):
            lines.append("    %s %s;" % (_node_id(host, "apps"), _attrs(
                label="consumer containers\non network %s\n(uses %s)" % (plan["network"], ", ".join(plan["consumes"])),
                shape="component", fillcolor="#ffffff")))
        for name in sorted(planned):
            ct = planned[name]
            action = done.get(name)
            if ct["kind"] == "service":
                label = "%s\nservice, image %s" % (name, ct["image"])
                fill = SERVICE_COLOUR
            elif ct.get("side") == "provider":
                label = "%s\nprovider-side ambassador\npublishes %s" % (name, ", ".join(_port_text(ct)) or "nothing")
                fill = AMBASSADOR_COLOUR
            else:
                label = "%s\nconsumer-side ambassador\nalias %s" % (name, ", ".join(ct.get("aliases") or []))
                fill = AMBASSADOR_COLOUR
            if action:
                label += "\n[%s]" % action
            lines.append("    %s %s;" % (_node_id(host, name), _attrs(
                label=label, fillcolor=ACTION_COLOURS.get(action, fill),
                shape="box3d" if ct["kind"] == "service" else "box")))
        # A provider-side ambassador forwarding to a container the user runs.
        for ct in plan["containers"]:
            target = ct.get("target")
            if ct.get("side") == "provider" and target and target not in planned:
                lines.append("    %s %s;" % (_node_id(host, target), _attrs(
                    label="%s\nyour container" % target, style="rounded,dashed", fillcolor="#ffffff")))
        for name in sorted(n for n, a in done.items() if a == "remove" and n not in planned):
            lines.append("    %s %s;" % (_node_id(host, name), _attrs(
                label="%s\n[remove]" % name, style="rounded,dashed,filled", fillcolor=ACTION_COLOURS["remove"],
                fontcolor="#6c757d")))
        lines.append("  }")

        for service in plan.get("consumes", []):
            provider = providers.get(service)
            if provider == host:
                edges.append((_node_id(host, "apps"), _node_id(host, _local_target(plan, service)), {"label": service}))
            else:
                edges.append((_node_id(host, "apps"), _node_id(host, ambassador_name(service)), {"label": service}))
        for ct in plan["containers"]:
            if ct.get("side") == "consumer":
                for endpoint in _target_ports(ct, provider_sides):
                    endpoints.setdefault(endpoint, set())
                    edges.append((_node_id(host, ct["name"]), _quote(endpoint),
                                  {"color": NETWORK_COLOUR, "penwidth": "1.6"}))
            elif ct.get("side") == "provider":
                # Consumers connect to the advertise address, whatever address the port is bound to.
                for endpoint in _port_text(ct, plan.get("advertise_address")):
                    endpoints.setdefault(endpoint, set()).add(_node_id(host, ct["name"]))
                target = ct.get("target") or ct["service"]
                edges.append((_node_id(host, ct["name"]), _node_id(host, target), {"label": target}))
    for endpoint in sorted(endpoints):
        lines.append("  %s %s;" % (_quote(endpoint), _attrs(
            label="network\n%s" % endpoint, shape="ellipse", style="filled", fillcolor="#e7ecf5",
            color=NETWORK_COLOUR, fontcolor=NETWORK_COLOUR)))
        for provider in sorted(endpoints[endpoint]):
            edges.append((_quote(endpoint), provider, {"color": NETWORK_COLOUR, "penwidth": "1.6", "label": "published"}))
    for tail, head, attrs in edges:
        lines.append("  %s -> %s %s;" % (tail, head, _attrs(**attrs)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _local_target(plan, service):
    """On the provider host, the container local consumers reach as the service's name."""
    if any(ct["name"] == service for ct in plan["containers"]):
        return service
    for ct in plan["containers"]:
        if ct["service"] == service and service in (ct.get("aliases") or []):
            return ct["name"]
    for ct in plan["containers"]:
        if ct.get("side") == "provider" and ct["service"] == service and ct.get("target"):
            return ct["target"]
    return service
