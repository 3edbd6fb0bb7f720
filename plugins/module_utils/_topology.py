# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""The topology as the inventory gives it, checked: :func:`validate` returns a :class:`Topology`.

Plain functions over plain data: no Ansible, no Docker. :func:`validate` owns every check of
the inventory's ambassador variables: it either returns the topology as immutable records
(:class:`Service`, :class:`Host`) or raises :class:`TopologyError` listing every problem it found,
each with the variable path and the fix, so that nothing is applied anywhere. Planning
(``_plan.plan``) then cannot fail.

Words used throughout (the same in the docs and tests):

* service: an entry of ``ambassador_services``, placed on one host (its provider), or on several
  (``hosts:``, its replicas: each is a provider).
* provider: a host a service runs on.
* replica: one of the providers of a service placed on several hosts.
* consumer: a host whose containers connect to a service.
* ambassador: a forwarding container named ``<service>_ambassador``. On the
  provider it publishes the service's ports on the provider's advertise
  address and forwards to the service container; on a consumer it carries the
  network alias ``<service>`` and forwards to the provider's advertise address (to a healthy
  replica's, chosen by ``balance``, for a service on several hosts).
* advertise_address: the address other hosts use to reach a host's published ports.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple, Optional

from ansible_collections.crosshost.ambassador.plugins.module_utils._connection import HOSTNAME, check_settings
from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import (
    BALANCING_DATAPLANES, DATAPLANES, DEFAULT_DATAPLANE)

DEFAULT_NETWORK = "ambassador"
# A real, public image whose entrypoint is socat and which has /bin/sh: the
# command this planner generates runs on it unchanged.
DEFAULT_IMAGE = "docker.io/alpine/socat:1.8.0.3"
AMBASSADOR_SUFFIX = "_ambassador"

# Mutual TLS between ambassadors (socat data plane): each host's CA certificate,
# certificate and key are installed in its TLS directory, mounted read-only at
# TLS_MOUNT.
DEFAULT_TLS_DIR = "/etc/crosshost-ambassador/tls/%s"  # % inventory hostname

SERVICE_KEYS = frozenset(
    ("host", "hosts", "port", "ports", "published", "protocol", "image", "command", "env", "volumes", "container",
     "consumers", "tls", "dataplane", "move", "balance", "health")
)
PROTOCOLS = ("tcp", "udp")
# How a service moves between hosts: its new place comes up before the old one goes
# (make_before_break), or the old one stops first so that two never run at once (stop_first;
# the default for a service with volumes on one host: never two writers).
MOVES = ("make_before_break", "stop_first")
# How the consumer-side ambassadors of a service on several hosts choose a replica for each new
# connection: every healthy one in turn, or the first healthy one in the order of hosts.
BALANCES = ("round_robin", "failover")
DEFAULT_BALANCE = "round_robin"
# The health checks of replicas, from each consumer-side ambassador (a TCP connect to each replica's
# published port): seconds between checks and for one check, failed checks that take a replica out,
# passed checks that bring it back. key -> (default, type, lowest, highest).
HEALTH = {
    "interval": (1, "number", 0.2, 3600),
    "timeout": (1, "number", 0.2, 3600),
    "fall": (2, "integer", 1, 100),
    "rise": (2, "integer", 1, 100),
}

# A service name is a container name, a DNS alias and (upper-cased) the prefix
# of environment variables, so it must be valid as all three.
_SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,61}[a-z0-9]$")
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,127}$")
_NETWORK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


class Problem(NamedTuple):
    """One thing wrong with the topology: where, what, and how to fix it."""

    path: str
    message: str
    fix: str

    def __str__(self):
        return "%s: %s. Fix: %s." % (self.path, self.message, self.fix)


class TopologyError(ValueError):
    """The topology is invalid; ``problems`` lists every reason, in a stable order."""

    def __init__(self, problems):
        self.problems = list(problems)
        lines = ["the ambassador topology is invalid (%d problem%s); nothing was changed on any host:"
                 % (len(self.problems), "" if len(self.problems) == 1 else "s")]
        lines.extend("  - %s" % (p,) for p in self.problems)
        super(TopologyError, self).__init__("\n".join(lines))


def env_prefix(service):
    """The legacy link-style variable prefix of a service: ``my-db`` -> ``MY_DB``."""
    return service.upper().replace("-", "_")


def ambassador_name(service):
    return service + AMBASSADOR_SUFFIX


def _type_name(value):
    """The plain type name of a value (Ansible hands over its own subclasses of list, str...)."""
    for plain in (bool, int, float, str, list, dict):
        if isinstance(value, plain):
            return plain.__name__
    return type(value).__name__


def _bool(value):
    """True/False from a boolean, or from the words Ansible's -e and surveys pass (true/false/yes/no); else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "false", "no", "off"):
        return value.lower() in ("true", "yes", "on")
    return None


def _port_problem(path, value):
    """What is wrong with a port number, or None."""
    if not isinstance(value, int) or isinstance(value, bool):
        return Problem(path, "%r is not a port number (%s)" % (value, _type_name(value)),
                       "use an integer from 1 to 65535, without quotes")
    if not 1 <= value <= 65535:
        return Problem(path, "%d is out of range" % value, "use an integer from 1 to 65535")
    return None


def _port_list(path, value, what):
    """A port or a list of ports: ``(list of ints, [])``, or ``(None, problems)``."""
    if isinstance(value, list) and not value:
        return None, [Problem(path, "the list of %s is empty" % what, "list at least one port, or remove the key")]
    items = value if isinstance(value, list) else [value]
    problems = [p for p in (_port_problem("%s[%d]" % (path, i) if isinstance(value, list) else path, v)
                            for i, v in enumerate(items)) if p]
    if not problems and len(set(items)) != len(items):
        problems.append(Problem(path, "%s %s are listed more than once"
                                % (what, sorted(set(p for p in items if items.count(p) > 1))), "list each port once"))
    return (None, problems) if problems else (items, [])


def _string_list(path, value, what):
    """``(the non-empty strings of a list, problems)``; None is an empty list."""
    if value is None:
        return [], []
    if isinstance(value, str) or not isinstance(value, list):
        return [], [Problem(path, "must be a list of %s, got %s" % (what, _type_name(value)),
                            "write a YAML list, e.g. [%s]" % ("name" if isinstance(value, str) else "..."))]
    bad = [i for i, item in enumerate(value) if not isinstance(item, str) or not item]
    if not bad:
        return list(value), []
    return ([item for i, item in enumerate(value) if i not in bad],
            [Problem("%s[%d]" % (path, i), "%r is not a %s" % (value[i], what), "use a non-empty string") for i in bad])


def _service_host_problems(path, host, known_hosts):
    if host is None:
        return [Problem(path + ".host", "is required (the inventory host the service runs on)",
                        "set host: <inventory hostname>, or hosts: [<hostname>, ...] to run it on several")]
    if not isinstance(host, str):
        return [Problem(path + ".host", "%r is not a host name" % (host,), "set host: <inventory hostname>")]
    if host not in known_hosts:
        return [Problem(path + ".host", "host %r is not in the inventory" % host,
                        "place the service on one of the inventory's hosts, or add %s to the inventory" % host)]
    return []


def _service_hosts(path, spec, known_hosts):
    """``(the hosts a service runs on, problems)``: ``host:`` names one, ``hosts:`` a list of them."""
    if "hosts" not in spec:
        problems = _service_host_problems(path, spec.get("host"), known_hosts)
        return (None if problems else [spec["host"]]), problems
    if "host" in spec:
        return None, [Problem(path, "has both host and hosts", "keep host: for one host, or hosts: for several")]
    value, key = spec["hosts"], path + ".hosts"
    if not isinstance(value, list) or not value:
        return None, [Problem(key, "must be a non-empty list of inventory hosts, got %s"
                              % ("an empty list" if value == [] else _type_name(value)),
                              "write e.g. hosts: [host2, host3]")]
    problems = []
    for i, host in enumerate(value):
        found = _service_host_problems("%s[%d]" % (key, i), host, known_hosts)
        problems.extend(Problem(p.path[:-len(".host")], p.message, p.fix.replace("set host: ", "list "))
                        for p in found)
    if not problems and len(set(value)) != len(value):
        problems.append(Problem(key, "lists %s more than once" % ", ".join(sorted(set(h for h in value
                                                                                  if value.count(h) > 1))),
                                "list each host once"))
    return (None if problems else list(value)), problems


def _health(path, value):
    """``(the health check settings of a replicated service, defaults filled in, problems)``."""
    settings = dict((key, default) for key, (default, _t, _l, _h) in HEALTH.items())
    if value is None:
        return settings, []
    if not isinstance(value, dict):
        return None, [Problem(path, "must be a mapping, got %s" % _type_name(value),
                              "write e.g. {interval: 1, timeout: 1, fall: 2, rise: 2}")]
    problems = [Problem("%s.%s" % (path, key), "unknown setting", "use only %s" % ", ".join(HEALTH))
                for key in sorted(value, key=str) if key not in HEALTH]
    for key, (_d, kind, low, high) in HEALTH.items():
        if key not in value:
            continue
        number, what = value[key], ("an " if kind == "integer" else "a ") + kind
        fix = "use %s from %s to %s" % (what, low, high)
        if isinstance(number, bool) or not isinstance(number, (int, float) if kind == "number" else int):
            problems.append(Problem("%s.%s" % (path, key), "%r is not %s" % (number, what), fix))
        elif not low <= number <= high:
            problems.append(Problem("%s.%s" % (path, key), "%s is out of range" % number, fix))
        else:
            settings[key] = number
    if not problems and settings["timeout"] > settings["interval"]:
        problems.append(Problem(path + ".timeout", "%s is longer than the interval %s"
                                % (settings["timeout"], settings["interval"]),
                                "use a timeout no longer than the interval between checks"))
    return (None if problems else settings), problems


def _replicas(path, spec, hosts, protocol, dataplane):
    """What a service on several hosts needs, checked: ``(balance, health, problems)``. A service on
    one host takes the settings too (it may have had replicas, and may again), and ignores them."""
    balance = spec.get("balance", DEFAULT_BALANCE)
    problems = []
    if balance not in BALANCES:
        problems.append(Problem(path + ".balance", "%r is not a way to balance" % (balance,),
                                "use round_robin (each new connection to the next healthy replica) or failover "
                                "(to the first healthy host of hosts)"))
    health, found = _health(path + ".health", spec.get("health"))
    problems += found
    if hosts and len(hosts) > 1:
        if protocol == "udp":
            problems.append(Problem(path + ".hosts", "replicas are health-checked by TCP connects, and the service "
                                    "is udp", "list one host for a udp service"))
        if dataplane in DATAPLANES and dataplane not in BALANCING_DATAPLANES:
            problems.append(Problem(path + ".dataplane", "the %s data plane forwards to one host and cannot balance "
                                    "across %d replicas" % (dataplane, len(hosts)),
                                    "remove dataplane (a service on several hosts uses %s), or set dataplane: %s"
                                    % (BALANCING_DATAPLANES[0], " or ".join(BALANCING_DATAPLANES))))
    return balance, health, problems


def _service_ports(path, spec):
    """``(ports, published, problems)`` of a service (None where they are wrong)."""
    if ("port" in spec) == ("ports" in spec):
        ports, problems = None, [Problem(path, "needs exactly one of port or ports (has %s)"
                                         % ("both" if "port" in spec else "neither"),
                                         "set port: <int> for one port, or ports: [<int>, ...] for several")]
    elif isinstance(spec.get("port"), list):
        ports, problems = None, [Problem(path + ".port", "is a list", "use ports: for a list, port: for a single integer")]
    else:
        key = "ports" if "ports" in spec else "port"
        ports, problems = _port_list("%s.%s" % (path, key), spec[key], "ports")
    if "published" not in spec:
        return ports, None if ports is None else list(ports), problems
    published, found = _port_list(path + ".published", spec["published"], "published ports")
    if published is not None and ports is not None and len(published) != len(ports):
        published, found = None, [Problem(path + ".published", "has %d port(s) for %d service port(s)"
                                          % (len(published), len(ports)),
                                          "give one published port per service port, in the same order")]
    return ports, published, problems + found


def _runtime(path, spec, image):
    """How the collection runs a service's container (image, command, env, volumes), checked:
    ``(its volumes, problems)``."""
    problems = []
    if image is not None and (not isinstance(image, str) or not image.strip()):
        problems.append(Problem(path + ".image", "%r is not an image reference" % (image,),
                                "use e.g. redis:7.2, or remove image"))
    problems.extend(Problem("%s.%s" % (path, key), "is only used when the collection runs the service (image is set)",
                            "set image, or remove %s" % key)
                    for key in ("command", "env", "volumes", "move") if key in spec and image is None)
    command = spec.get("command")
    if command is not None and not (isinstance(command, str) or
                                    (isinstance(command, list) and all(isinstance(x, str) for x in command))):
        problems.append(Problem(path + ".command", "must be a string or a list of strings",
                                "write e.g. [redis-server, --appendonly, 'yes']"))
    env = spec.get("env") or {}
    if not isinstance(env, dict):
        problems.append(Problem(path + ".env", "must be a mapping of variable names to values", "write e.g. {TZ: UTC}"))
        env = {}
    for key, value in env.items():
        if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            problems.append(Problem("%s.env.%s" % (path, key), "is not a valid variable name", "use letters, digits and _"))
        elif isinstance(value, (dict, list)) or value is None:
            problems.append(Problem("%s.env.%s" % (path, key), "must be a string or a number", "quote the value"))
    volumes, found = _string_list(path + ".volumes", spec.get("volumes"), "volume (source:/path[:mode])")
    problems.extend(found)
    for i, vol in enumerate(volumes):
        parts = vol.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
            problems.append(Problem("%s.volumes[%d]" % (path, i), "%r is not source:/path[:mode]" % vol,
                                    "write e.g. redis-data:/data or /srv/redis:/data:ro"))
    return volumes, problems


def _consumer_hosts(path, name, refs, known_hosts, groups):
    """``(the hosts that ``consumers`` names, directly or by group, problems)``."""
    found, problems = _string_list(path + ".consumers", refs, "host or group name")
    hosts = set()
    for i, ref in enumerate(found):
        if ref == name and ref not in groups and ref not in known_hosts:
            problems.append(Problem("%s.consumers[%d]" % (path, i), "a service cannot consume itself",
                                    "list the hosts or groups whose containers use %s" % name))
        elif ref in groups:
            hosts.update(groups[ref])
        elif ref in known_hosts:
            hosts.add(ref)
        else:
            problems.append(Problem("%s.consumers[%d]" % (path, i), "%r is neither an inventory host nor a group" % ref,
                                    "name a host or group of the inventory"))
    return hosts, problems


def _service(name, spec, known_hosts, groups, default_dataplane):
    """One service checked: ``(its normalised form, [])``, or ``(None, problems)``."""
    path = "ambassador_services.%s" % name
    if not isinstance(spec, dict):
        return None, [Problem(path, "must be a mapping of settings, got %s" % _type_name(spec),
                              "write e.g. {host: host2, port: 6379}")]
    problems = [Problem("%s.%s" % (path, key), "unknown setting", "use only %s" % ", ".join(sorted(SERVICE_KEYS)))
                for key in sorted(k for k in spec if k not in SERVICE_KEYS)]
    hosts, found = _service_hosts(path, spec, known_hosts)
    problems += found
    ports, published, found = _service_ports(path, spec)
    problems += found
    protocol = spec.get("protocol", "tcp")
    if protocol not in PROTOCOLS:
        problems.append(Problem(path + ".protocol", "%r is not a protocol" % (protocol,), "use tcp or udp"))
    image = spec.get("image")
    volumes, found = _runtime(path, spec, image)
    problems += found
    # Stop-first keeps a service that keeps data from ever having two writers; replicas already have one each.
    move = spec.get("move", "stop_first" if volumes and hosts and len(hosts) == 1 else "make_before_break")
    if move not in MOVES:
        problems.append(Problem(path + ".move", "%r is not a way to move" % (move,),
                                "use make_before_break (the new place first) or stop_first (the old one stops first: "
                                "for services that keep data)"))
    container = spec.get("container", name)
    if "container" in spec and image is not None:
        problems.append(Problem(path + ".container", "cannot be combined with image (the collection names its service "
                                "containers like the service)",
                                "remove container, or remove image and run the container yourself"))
    elif "container" in spec and (not isinstance(container, str) or not _CONTAINER_NAME.match(container)):
        problems.append(Problem(path + ".container", "%r is not a valid container name" % (container,),
                                "use letters, digits, '_', '.' or '-', starting with a letter or digit"))
    # A service on several hosts balances across them: on the data plane that can, unless it names one.
    dataplane = spec.get("dataplane", BALANCING_DATAPLANES[0] if hosts and len(hosts) > 1 else default_dataplane)
    if dataplane not in DATAPLANES:
        problems.append(Problem(path + ".dataplane", "%r is not a data plane" % (dataplane,),
                                "use %s, or remove dataplane to use ambassador_dataplane" % " or ".join(DATAPLANES)))
    tls = _bool(spec.get("tls"))
    if spec.get("tls") is not None and tls is None:
        problems.append(Problem(path + ".tls", "%r is not true or false" % (spec.get("tls"),),
                                "write tls: true or tls: false"))
    if tls and protocol == "udp":
        problems.append(Problem(path + ".tls", "mutual TLS is for tcp services only", "remove tls, or use protocol: tcp"))
    consumer_hosts, found = _consumer_hosts(path, name, spec.get("consumers"), known_hosts, groups)
    problems += found
    balance, health, found = _replicas(path, spec, hosts, protocol, dataplane)
    problems += found
    if problems:
        return None, problems
    return {"name": name, "hosts": hosts, "balance": balance, "health": health, "ports": ports, "published": published,
            "protocol": protocol, "image": image, "command": spec.get("command"),
            "env": dict((k, str(v)) for k, v in sorted((spec.get("env") or {}).items())),
            "volumes": volumes, "container": container, "consumer_hosts": consumer_hosts,
            "tls": tls, "dataplane": dataplane, "move": move}, []


def _ip(value):
    try:
        return ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _provider_addresses(host, hv):
    """``(advertise address, bind address, problems)`` of a host whose services have remote consumers."""
    advertise, problems = _advertise_address(host, hv.get("advertise_address"))
    bind = hv.get("bind_address")
    path = "%s: ambassador_bind_address" % host
    if bind is None or bind == "":
        if advertise is not None and _ip(advertise) is None:
            return advertise, None, problems + [Problem(
                path, "is not set and the advertise address %r is a name, not an IP, so there is no address to "
                "publish on" % advertise, "set ambassador_bind_address for %s to the IP of the interface other "
                "hosts reach (0.0.0.0 publishes on every interface)" % host)]
        return advertise, advertise, problems
    if _ip(bind) is None:
        return advertise, None, problems + [Problem(path, "%r is not an IP address" % (bind,),
                                                    "use the IP of an interface of %s, or 0.0.0.0 for all" % host)]
    return advertise, bind, problems


def _source_address(host, hv):
    """``(the IP a consumer host's connections come from, for providers' allow-lists, problems)``."""
    source = hv.get("source_address")
    if source is None or source == "":
        advertise = hv.get("advertise_address")
        ip = _ip(advertise)
        if ip is not None and not ip.is_unspecified:
            return advertise, []
        return None, [Problem("%s: ambassador_source_address" % host, "is not set and the advertise address %r is not "
                              "an IP, yet %s consumes services of other hosts, whose ambassadors accept only their "
                              "consumers' addresses" % (advertise, host), "set ambassador_source_address (or "
                              "ambassador_advertise_address) for %s to the IP its connections to other hosts come from"
                              % host)]
    ip = _ip(source)
    if ip is None or ip.is_unspecified:
        return None, [Problem("%s: ambassador_source_address" % host, "%r is not an IP address" % (source,),
                              "use the IP that %s's connections to other hosts come from" % host)]
    return source, []


def _advertise_address(host, addr):
    """``(the address other hosts reach ``host`` on, or None, problems)``."""
    path = "%s: ambassador_advertise_address" % host
    if addr is None or addr == "":
        return None, [Problem(path, "is not set, and the host has no ansible_host or default IPv4 fact, yet its "
                              "services have consumers on other hosts", "set ambassador_advertise_address for %s to "
                              "the address other hosts reach it on" % host)]
    if not isinstance(addr, str):
        return None, [Problem(path, "%r is not an address" % (addr,), "use an IP address or a DNS name")]
    ip = _ip(addr)
    if ip is None and not HOSTNAME.match(addr):
        return None, [Problem(path, "%r is neither an IP address nor a DNS name" % addr,
                              "use an IP address or a DNS name")]
    if ip is not None and (ip.is_unspecified or ip.is_multicast):
        return None, [Problem(path, "%s cannot be connected to" % addr,
                              "use the address other hosts reach %s on" % host)]
    return addr, []


def _host_settings(host, hv, file_exists=None):
    """A host's own settings checked: ``(fields of its :class:`Host`, problems)``."""
    problems = []
    network = hv.get("network") or DEFAULT_NETWORK
    if not isinstance(network, str) or not _NETWORK_NAME.match(network):
        problems.append(Problem("%s: ambassador_network" % host, "%r is not a valid Docker network name" % (network,),
                                "use letters, digits, '_', '.' or '-'"))
    image = hv.get("image") or DEFAULT_IMAGE
    if not isinstance(image, str) or not image.strip() or any(ch.isspace() for ch in image):
        problems.append(Problem("%s: ambassador_image" % host, "%r is not an image reference" % (image,),
                                "use a socat image such as %s" % DEFAULT_IMAGE))
    # How the module reaches the engine: unset settings are filled on the host from the module's
    # environment (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, ...), else the local socket.
    docker, found = check_settings(hv.get("docker") or {}, file_exists if hv.get("local") else None)
    problems.extend(Problem("%s: %s" % (host, variable), what, fix) for variable, what, fix in found)
    tls_dir = hv.get("tls_dir") or DEFAULT_TLS_DIR % host
    if not isinstance(tls_dir, str) or not tls_dir.startswith("/") or ":" in tls_dir:
        problems.append(Problem("%s: ambassador_tls_dir" % host, "%r is not an absolute path" % (tls_dir,),
                                "use an absolute directory path without ':'"))
    kernel_image = hv.get("kernel_image") or None
    if kernel_image is not None and (not isinstance(kernel_image, str) or any(ch.isspace() for ch in kernel_image)):
        problems.append(Problem("%s: ambassador_kernel_image" % host, "%r is not an image reference" % (kernel_image,),
                                "use an image with /bin/sh, iptables-restore and getent"))
    return {"network": network, "image": image, "docker": docker, "tls_dir": tls_dir,
            "kernel_image": kernel_image}, problems


def parse_placement(value):
    """Placement overrides as ``{service: host}`` (``{service: [host, ...]}`` for several), from a mapping or
    from survey text.

    ``value`` is what ``ambassador_placement_overrides`` holds: a mapping
    (``{redis: host3}``, or ``{api: [host1, host2]}`` for several hosts, from extra vars or a
    playbook), or a string as an AWX survey's text field passes it, ``"redis=host3"`` or
    ``"redis=host3, api=host1+host2"`` (commas or whitespace between pairs, ``+`` between the
    hosts of one service). None and ``""`` mean no override.

    :returns: ``(overrides, problems)``; ``problems`` is a list of :class:`Problem`.
    """
    overrides, problems = _placement_hosts(value)
    return dict((service, hosts[0] if len(hosts) == 1 else hosts) for service, hosts in overrides.items()), problems


def _placement_hosts(value):
    """:func:`parse_placement`'s answer with every service's hosts as a list, even of one."""
    path = "ambassador_placement_overrides"
    if value is None or value == "" or value == {}:
        return {}, []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for item in re.split(r"[\s,]+", re.sub(r"\s*=\s*", "=", value.strip())):
            if not item:
                continue
            service, sep, host = item.partition("=")
            if not sep or not service or not host:
                return {}, [Problem(path, "%r is not service=host" % item,
                                    "write e.g. redis=host3, or several pairs separated by commas")]
            pairs.append((service, host.split("+") if "+" in host else host))
    else:
        return {}, [Problem(path, "must be a mapping {service: host} or text service=host, got %s"
                            % _type_name(value), "write e.g. {redis: host3} or redis=host3")]
    overrides, problems = {}, []
    for service, host in pairs:
        hosts = host if isinstance(host, list) else [host]
        if not isinstance(service, str) or not service:
            problems.append(Problem("%s.%s" % (path, service), "%r is not a service name" % (service,),
                                    "give the name of a service of ambassador_services"))
        elif not hosts or not all(isinstance(h, str) and h for h in hosts):
            problems.append(Problem("%s.%s" % (path, service), "%r is not a host name, nor a list of them" % (host,),
                                    "give the inventory host the service moves to, or a list of hosts"))
        elif len(set(hosts)) != len(hosts):
            problems.append(Problem("%s.%s" % (path, service), "names a host more than once", "list each host once"))
        elif overrides.setdefault(service, hosts) != hosts:
            problems.append(Problem("%s.%s" % (path, service), "is given twice (%s and %s)"
                                    % ("+".join(overrides[service]), "+".join(hosts)), "give each service one placement"))
    return overrides, problems


def _apply_placement(services, placement, known_hosts):
    """``(services with the placement overrides applied, problems)``; unknown names are problems."""
    overrides, problems = _placement_hosts(placement)
    moved = dict(services)
    for service in sorted(overrides):
        hosts = overrides[service]
        path = "ambassador_placement_overrides.%s" % service
        if service not in services:
            problems.append(Problem(path, "service %r is not defined in ambassador_services" % service,
                                    "move one of: %s" % (", ".join(sorted(str(name) for name in services)) or "(no services defined)")))
        elif any(h not in known_hosts for h in hosts):
            problems.append(Problem(path, "host %r is not in the inventory" % [h for h in hosts if h not in known_hosts][0],
                                    "move the service to one of the inventory's hosts"))
        elif isinstance(services[service], dict):
            moved[service] = dict((k, v) for k, v in services[service].items() if k not in ("host", "hosts"))
            moved[service].update({"host": hosts[0]} if len(hosts) == 1 else {"hosts": hosts})
    return moved, problems


class Service(NamedTuple):
    """A service of ``ambassador_services``, checked, with its defaults filled in."""

    name: str
    host: str  # its provider (the first of hosts)
    hosts: tuple  # its providers: one, or its replicas in the order given
    ports: tuple  # of the service container
    published: tuple  # on the provider, one per port
    protocol: str
    image: Optional[str]  # None: the user runs the service's container
    command: object
    env: dict
    volumes: tuple
    container: str  # what its provider-side ambassador forwards to
    tls: bool  # mutual TLS between its ambassadors
    dataplane: str
    move: str
    consumers: tuple  # every host whose containers connect to it, sorted
    remote_consumers: tuple  # those other than its provider
    addresses: tuple  # the advertise address of each of hosts (for remote consumers), in that order
    allow: tuple  # their source addresses: the only peers its provider-side ambassadors let in
    balance: str  # with several hosts: how consumers choose a replica (BALANCES)
    health: dict  # with several hosts: how consumers check replicas (HEALTH)

    @property
    def address(self):
        """Its (first) provider's advertise address, that remote consumers connect to; None without them."""
        return self.addresses[0] if self.addresses else None


class Host(NamedTuple):
    """A host to plan, with its settings checked."""

    name: str
    network: str
    image: str  # the socat ambassador image (also what the run's lock runs)
    kernel_image: Optional[str]
    docker: dict  # how the module reaches its engine (_connection.check_settings)
    tls_dir: str
    advertise: Optional[str]  # ambassador_advertise_address, as given
    bind: Optional[str]  # where its provider-side ambassadors publish (checked when they do)
    consumes: frozenset  # services its containers connect to
    provides: tuple  # services placed on it, sorted


class Topology(NamedTuple):
    """The whole checked topology: what planning needs, and nothing left to check."""

    services: dict  # name -> Service
    hosts: dict  # name -> Host, one per host to plan, in the caller's order

    @property
    def stop_first(self):
        """The services the collection runs that move stop-first."""
        return sorted(n for n, svc in self.services.items() if svc.move == "stop_first" and svc.image)

    @property
    def service_hosts(self):
        """Service -> its provider and consumer hosts."""
        return dict((n, sorted(set(svc.consumers) | set(svc.hosts))) for n, svc in sorted(self.services.items()))


def ambassador_side(service, host, consumes):
    """Which ambassador of ``service`` the host ``host`` (consuming ``consumes``) runs: ``provider``,
    ``consumer`` or None. A provider-side ambassador serves remote consumers, or gives a differently
    named service container the service's name for local ones; every other host that consumes the
    service gets a consumer-side one."""
    if host not in service.hosts:
        return "consumer" if service.name in consumes else None
    if service.remote_consumers or (service.container != service.name and service.name in consumes):
        return "provider"
    return None


def _host_problems(topology):
    """What only the whole topology shows: a kernel ambassador needs the host's kernel image, and
    a service container must not take the name of another service's ambassador."""
    services = topology.services
    kernel = set(n for n, svc in services.items() if svc.dataplane == "kernel")
    # A service container named like the ambassador of its owner service.
    owners = dict((n, n[:-len(AMBASSADOR_SUFFIX)]) for n, svc in services.items() if svc.image is not None
                  and n.endswith(AMBASSADOR_SUFFIX) and n[:-len(AMBASSADOR_SUFFIX)] in services)
    if not kernel and not owners:
        return
    for host in topology.hosts.values():
        for name in sorted((set(host.provides) | (host.consumes & services.keys())) & (kernel | set(owners))):
            svc = services[name]
            if (name in kernel and host.kernel_image is None
                    and ambassador_side(svc, host.name, host.consumes)):
                why = " (it balances across its replicas)" if len(svc.hosts) > 1 else ""
                yield Problem("%s: ambassador_kernel_image" % host.name, "is not set, yet service %r uses the kernel "
                              "data plane on this host%s" % (name, why),
                              "set it to an image with /bin/sh, iptables-restore, getent, nc and timeout (the lab's "
                              "is crosshost-lab/kernel:1)%s" % ("" if len(svc.hosts) > 1 else
                                                                ", or set dataplane: socat on %s" % name))
            owner = owners.get(name)
            if owner and host.name in svc.hosts and ambassador_side(services[owner], host.name, host.consumes):
                yield Problem("ambassador_services.%s" % name, "its container name %r on %s is also the ambassador of "
                              "service %r" % (name, host.name, owner), "rename service %s" % name)


def _services(services, known, groups, tls, dataplane):
    """Every service checked, TLS defaulted: ``(name -> normalised service, problems)``."""
    normalised, problems, folded = {}, [], {}
    for name in sorted(services, key=str):
        if not isinstance(name, str) or not _SERVICE_NAME.match(name):
            problems.append(Problem("ambassador_services.%s" % (name,), "%r is not a valid service name" % (name,),
                                    "use 2-63 lowercase letters, digits, '-' or '_', starting and ending with a "
                                    "letter or digit"))
            continue
        other = folded.setdefault(env_prefix(name), name)
        if other != name:
            problems.append(Problem("ambassador_services.%s" % name, "folds to the same variable prefix %s_ as service "
                                    "%r" % (env_prefix(name), other), "rename one of the two services"))
        svc, found = _service(name, services[name], known, groups, dataplane)
        problems += found
        if svc is None:
            continue
        if svc["tls"] is None:
            svc["tls"] = tls and svc["protocol"] == "tcp"
        if svc["tls"] and svc["dataplane"] == "kernel":
            problems.append(Problem("ambassador_services.%s.tls" % name, "the kernel data plane forwards packets and "
                                    "cannot speak TLS (asked for by %s)" % ("tls: true" if services[name].get("tls")
                                                                            is not None else "ambassador_tls"),
                                    "set tls: false on %s (its replicas balance on the kernel data plane, the one "
                                    "that can)" % name if len(svc["hosts"]) > 1 else
                                    "use dataplane: socat for %s, or set tls: false on it" % name))
        normalised[name] = svc
    return normalised, problems


def _consumed(host, hv, services):
    """``(the services that ``ambassador_consumes`` of ``host`` names, problems)``."""
    names, problems = _string_list("%s: ambassador_consumes" % host, hv.get("consumes"), "service name")
    wanted = set()
    for i, name in enumerate(names):
        if name in services:
            wanted.add(name)
        else:
            problems.append(Problem("%s: ambassador_consumes[%d]" % (host, i), "service %r is not defined in "
                                    "ambassador_services" % name, "define %s in ambassador_services, or remove it "
                                    "from ambassador_consumes" % name))
    return wanted, problems


_NO_LINKS = {"remote_consumers": (), "addresses": (), "allow": ()}  # a service consumed on its own host only


def _connections(services, hosts, consumers_of):
    """What connections across hosts need, checked: ``(service -> {remote_consumers: its consumers on other
    hosts, addresses: its providers' advertise addresses, allow: their source addresses}, host ->
    its bind address, problems)``. Only the hosts of services with remote consumers need addresses; each
    host's are checked once."""
    advertise, bind, sources, problems = {}, {}, {}, []
    published_on, found = {}, {}
    for name in sorted(services):
        svc = services[name]
        providers = svc["hosts"]
        remote = sorted(h for h in consumers_of[name] if h not in providers)
        if not remote:
            continue
        for provider in providers:
            if provider not in advertise:
                advertise[provider], bind[provider], more = _provider_addresses(provider, hosts.get(provider) or {})
                problems += more
        for consumer in remote:
            if consumer not in sources:
                sources[consumer], more = _source_address(consumer, hosts.get(consumer) or {})
                problems += more
        for provider in providers:
            if svc["dataplane"] == "kernel" and ":" in (advertise[provider] or ""):
                problems.append(Problem("ambassador_services.%s.dataplane" % name, "the kernel data plane forwards "
                                        "IPv4 only, and %s's advertise address %s is IPv6"
                                        % (provider, advertise[provider]),
                                        "use dataplane: socat for %s, or an IPv4 advertise address for %s"
                                        % (name, provider)))
            for port in svc["published"]:
                clash = published_on.setdefault(provider, {}).setdefault((port, svc["protocol"]), name)
                if clash != name:
                    problems.append(Problem("ambassador_services.%s.published" % name, "%s port %d on %s is already "
                                            "published for service %r" % (svc["protocol"], port, provider, clash),
                                            "give one of the two services another published port"))
        found[name] = {"addresses": tuple(advertise[p] for p in providers),
                       "allow": tuple(sources[c] for c in remote), "remote_consumers": tuple(remote)}
    return found, bind, problems


def validate(services, hosts, groups=None, known_hosts=None, tls=False, placement=None, dataplane=None,
             file_exists=None):
    """Check the topology the inventory describes; return it as a :class:`Topology`.

    :param services: the value of ``ambassador_services`` (service name -> spec).
    :param hosts: inventory hostname -> that host's settings, a dict with the
        optional keys ``consumes`` (``ambassador_consumes``), ``advertise_address``,
        ``bind_address``, ``source_address``, ``network``, ``image``, ``kernel_image``,
        ``tls_dir`` (each the ``ambassador_`` variable of that name), ``docker``
        (the connection settings, keys of ``_connection.VARIABLES``: ``host`` is the engine's URL) and ``local``
        (true when the module runs on this machine, so its TLS files must be here). Each is
        planned; services placed on hosts outside the play are planned with those hosts in here.
    :param groups: inventory group name -> list of hostnames (for ``consumers``).
    :param known_hosts: every inventory hostname (default: the keys of ``hosts``).
    :param tls: ``ambassador_tls``: mutual TLS between ambassadors for every
        service whose own ``tls`` setting does not say otherwise.
    :param placement: ``ambassador_placement_overrides``: services to place on
        another host than their ``host`` says, ``{service: host}`` or survey text
        (see :func:`parse_placement`). The move is checked like the rest.
    :param dataplane: ``ambassador_dataplane``, the data plane of services that name none
        (default ``socat``).
    :param file_exists: asked whether each TLS file of a ``local`` host exists (e.g. ``os.path.isfile``);
        None checks no file.
    :raises TopologyError: listing every problem; nothing should be applied then.
    """
    groups = groups or {}
    known = set(known_hosts) if known_hosts is not None else set(hosts)
    known.update(hosts)
    if services is None:
        raise TopologyError([Problem("ambassador_services", "is not defined", "define it (normally in group_vars/all); "
                                     "an empty mapping {} removes every ambassador")])
    if not isinstance(services, dict):
        raise TopologyError([Problem("ambassador_services", "must be a mapping of service name to settings, got %s"
                                     % _type_name(services), "write e.g. {redis: {host: host2, port: 6379}}")])
    services, problems = _apply_placement(services, placement, known)
    if _bool(tls) is None:
        problems.append(Problem("ambassador_tls", "%r is not true or false" % (tls,), "set ambassador_tls: true or false"))
    if dataplane is not None and dataplane not in DATAPLANES:
        problems.append(Problem("ambassador_dataplane", "%r is not a data plane" % (dataplane,),
                                "use %s" % " or ".join(DATAPLANES)))
    normalised, found = _services(services, known, groups, bool(_bool(tls)),
                                  dataplane if dataplane in DATAPLANES else DEFAULT_DATAPLANE)
    problems += found
    settings, consumes = {}, {}
    for host in hosts:
        settings[host], found = _host_settings(host, hosts[host] or {}, file_exists)
        problems += found
        consumes[host], found = _consumed(host, hosts[host] or {}, services)
        problems += found
    for name, svc in normalised.items():
        for host in svc["consumer_hosts"]:
            consumes.setdefault(host, set()).add(name)
    # Inverted once, so that the work grows with hosts x consumed services, not hosts x services.
    consumers_of = dict((name, set()) for name in normalised)
    for host, wanted in consumes.items():
        for name in wanted & consumers_of.keys():
            consumers_of[name].add(host)
    # Services placed on hosts without a plan (outside the play) still need an address when
    # consumed elsewhere; the caller passes those hosts in `hosts`.
    links, bind, found = _connections(normalised, hosts, consumers_of)
    problems += found
    records = dict((name, Service(
        name=name, host=svc["hosts"][0], hosts=tuple(svc["hosts"]), balance=svc["balance"],
        health=svc["health"], ports=tuple(svc["ports"]), published=tuple(svc["published"]),
        protocol=svc["protocol"], image=svc["image"], command=svc["command"], env=svc["env"],
        volumes=tuple(svc["volumes"]), container=svc["container"], tls=svc["tls"], dataplane=svc["dataplane"],
        move=svc["move"], consumers=tuple(sorted(consumers_of[name])),
        **links.get(name, _NO_LINKS))) for name, svc in sorted(normalised.items()))
    provided = {}
    for name in sorted(records):
        for host in records[name].hosts:
            provided.setdefault(host, []).append(name)
    topology = Topology(services=records, hosts=dict(
        (host, Host(name=host, advertise=(hosts[host] or {}).get("advertise_address"), bind=bind.get(host),
                    consumes=frozenset(consumes[host]), provides=tuple(provided.get(host, ())), **settings[host]))
        for host in hosts))
    problems.extend(_host_problems(topology))
    if problems:
        raise TopologyError(problems)
    return topology
