# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""Derive every host's ambassador containers from a validated :class:`_topology.Topology`.

Plain functions over plain data: no Ansible, no Docker. :func:`plan` cannot fail: every check
is ``_topology.validate``'s. The controller calls :func:`plan_topology` (both in one) once with
what the inventory says.
"""

from __future__ import annotations

import gc

from ansible_collections.crosshost.ambassador.plugins.module_utils._container import planned_container
from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import (
    REPLICAS_FILE, TLS_MOUNT, addresses_text, allow_files, ambassador_process, balanced_process)
from ansible_collections.crosshost.ambassador.plugins.module_utils._topology import (
    ambassador_name, ambassador_side, env_prefix, validate)

# Ambassadors run with the least they need: socat forwards bytes as an
# unprivileged user (Docker lets containers bind low ports without privileges),
# on a read-only root filesystem, with no capabilities and bounded resources.
AMBASSADOR_HARDENING = {
    "user": "65534:65534",
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "memory": 256 * 1024 * 1024,
    "pids_limit": 1024,
}
# Service containers are the user's application: run as their image says.
# The kernel data plane programs iptables in the ambassador's own network
# namespace: it runs as root with NET_ADMIN (that namespace's only), and
# iptables needs a writable /run for its lock; the rest of the hardening holds.
KERNEL_HARDENING = dict(AMBASSADOR_HARDENING, user=None, read_only=False)


def link_environment(service, ports, protocol):
    """Docker-links-style variables naming the service by its alias, as legacy apps read them.

    They name ``<service>:<port>``, never an address, so they do not change when
    the service moves.
    """
    prefix = env_prefix(service)
    env = {"%s_PORT" % prefix: "%s://%s:%d" % (protocol, service, ports[0])}
    for port in ports:
        base = "%s_PORT_%d_%s" % (prefix, port, protocol.upper())
        env[base] = "%s://%s:%d" % (protocol, service, port)
        env[base + "_ADDR"] = service
        env[base + "_PORT"] = str(port)
        env[base + "_PROTO"] = protocol
    return env


def plan_topology(services, hosts, groups=None, known_hosts=None, tls=False, placement=None, dataplane=None,
                  summary=None, file_exists=None):
    """Check the topology and plan every host: :func:`plan` of ``_topology.validate`` (see its
    parameters; it raises ``_topology.TopologyError``).

    :param summary: a dict to fill with what concerns the topology as a whole, for the steps
        that coordinate hosts: ``stop_first`` (the services the collection runs that move
        stop-first) and ``service_hosts`` (service -> its provider and consumer hosts).
    """
    topology = validate(services, hosts, groups=groups, known_hosts=known_hosts, tls=tls, placement=placement,
                        dataplane=dataplane, file_exists=file_exists)
    if summary is not None:
        summary["stop_first"] = topology.stop_first
        summary["service_hosts"] = topology.service_hosts
    return plan(topology)


def plan(topology):
    """Hostname -> the plan of each host of the topology (see :func:`_host_plan`), in its order."""
    shared = {}
    # The plans are acyclic and only grow here: the cyclic garbage collector would rescan them over
    # and over. Measured on bench/planning.py's 5,000 hosts x 1,000 services (CPU time, median of 6):
    # 0.47 s with it, 0.36 s without.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return dict((name, _host_plan(host, topology.services, shared)) for name, host in topology.hosts.items())
    finally:
        if collecting:
            gc.enable()


def _ambassador(svc, side, process, host, image, **values):
    """An ambassador container of ``svc`` on ``host`` (``values``: env, aliases, published, tls, target)."""
    if values.get("tls"):
        values["volumes"] = ["%s:%s:ro" % (host.tls_dir, TLS_MOUNT)]
    values.update(process)
    values.update(KERNEL_HARDENING if svc.dataplane == "kernel" else AMBASSADOR_HARDENING)
    return planned_container(name=ambassador_name(svc.name), kind="ambassador", side=side, service=svc.name,
                             dataplane=svc.dataplane, image=image, network=host.network, **values)


def _consumer_side(svc, host, image):
    """The consumer-side ambassador of a service, the same on every host with its image, network
    and (with TLS) TLS directory. With one provider, its environment says where it forwards (the
    provider's address); with several, its replicas are a file delivered to it (``files``), so that
    a change of the replica set changes nothing that defines the container."""
    pairs = list(zip(svc.ports, svc.published))
    if len(svc.hosts) > 1:
        return _ambassador(svc, "consumer", balanced_process(svc.dataplane, pairs, svc.balance, svc.health), host,
                           image, aliases=[svc.name], files={REPLICAS_FILE: addresses_text(svc.addresses)})
    prefix = env_prefix(svc.name)
    env = dict(("%s_PORT_%d_%s" % (prefix, p, svc.protocol.upper()), "%s://%s:%d" % (svc.protocol, svc.address, pub))
               for p, pub in pairs)
    process = ambassador_process(svc.dataplane, svc.protocol, pairs, svc.address, tls_role=svc.host if svc.tls else None)
    return _ambassador(svc, "consumer", process, host, image, env=env, aliases=[svc.name], tls=svc.tls)


def _provider_side(svc, host, image, local_alias):
    remote = bool(svc.remote_consumers)
    tls = svc.tls and remote
    process = ambassador_process(svc.dataplane, svc.protocol, [(p, p) for p in svc.ports], svc.container,
                                 allow=svc.allow, tls_role="server" if tls else None)
    published = [{"host_ip": host.bind, "host_port": pub, "port": p, "protocol": svc.protocol}
                 for p, pub in zip(svc.ports, svc.published)] if remote else []
    # The kernel plane's allow-list is a delivered file: a consumer host added or taken out changes no spec.
    return _ambassador(svc, "provider", process, host, image, aliases=[svc.name] if local_alias else [],
                       published=published, tls=tls, target=svc.container, files=allow_files(svc.dataplane, svc.allow))


def _host_plan(host, services, shared):
    """One host's plan: its network, the containers it must run and the consumers' environment.

    ``shared`` caches, per service, what is the same on every consumer host (the consumer-side
    ambassador, the link-style environment), so that it is built once, not once per host.
    """
    containers = []
    environment = {}
    for name in sorted(set(host.provides).union(n for n in host.consumes if n in services)):
        svc = services[name]
        image = host.kernel_image if svc.dataplane == "kernel" else host.image
        side = ambassador_side(svc, host.name, host.consumes)
        if host.name in svc.hosts and svc.image is not None:
            containers.append(planned_container(name=name, kind="service", service=name, image=svc.image,
                                                command=svc.command, env=svc.env, volumes=list(svc.volumes),
                                                network=host.network))
        if side == "provider":
            containers.append(_provider_side(svc, host, image, svc.container != name and name in host.consumes))
        elif side == "consumer":
            key = ("consumer", name, image, host.network, host.tls_dir if svc.tls else None)
            if key not in shared:
                shared[key] = _consumer_side(svc, host, image)
            containers.append(dict(shared[key]))
        if name in host.consumes:
            if ("links", name) not in shared:
                shared["links", name] = link_environment(name, svc.ports, svc.protocol)
            environment.update(shared["links", name])
    return {
        "host": host.name,
        "docker_host": host.docker["host"],  # ambassador_docker_host, as the plan was always documented
        "docker": host.docker,
        "network": host.network,
        "containers": containers,
        "consumes": sorted(host.consumes),
        "provides": list(host.provides),
        "environment": dict(sorted(environment.items())),
        "tls_dir": host.tls_dir if any(ct["tls"] for ct in containers) else None,
        # The socat image (ambassador_image): also what the run's lock on this engine runs.
        "image": host.image,
        "advertise_address": host.advertise,
    }
