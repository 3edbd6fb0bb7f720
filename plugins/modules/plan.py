#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done on the controller by the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: plan
short_description: Derive every host's ambassadors from the inventory, validating the whole topology first
version_added: 0.1.0
description:
  - Reads C(ambassador_services) and, for every inventory host, C(ambassador_consumes),
    C(ambassador_advertise_address), C(ambassador_network), C(ambassador_image), C(ambassador_kernel_image)
    and the connection settings C(ambassador_docker_host), C(ambassador_docker_tls_verify), C(ambassador_docker_ca_path),
    C(ambassador_docker_client_cert), C(ambassador_docker_client_key), C(ambassador_docker_tls_hostname),
    C(ambassador_docker_api_version) and C(ambassador_docker_use_ssh_client), and returns one plan per host for
    M(crosshost.ambassador.apply).
  - The connection settings are checked with the rest; the TLS files of hosts with C(ansible_connection=local)
    (whose modules run on the controller) must exist here.
  - Runs on the controller and contacts no host. Run it once (C(run_once)); every host's plan is in
    the result.
  - "The whole topology is validated first. When anything is wrong the task fails and lists every
    problem, each as C(<variable path>: <what is wrong>. Fix: <what to do>.), and no plan is returned,
    so nothing is applied anywhere."
  - A service placed on host H gets, on H, its service container (when C(image) is set) and, when it has
    consumers on other hosts, a provider-side ambassador C(<service>_ambassador) publishing
    C(advertise_address:published) and forwarding to the service container. Every other host that
    consumes it gets a consumer-side ambassador C(<service>_ambassador) with the network alias C(<service>),
    forwarding to the provider's advertise address.
  - A service placed on several hosts (C(hosts)) runs on each of them (its replicas) as on one. Every other
    host that consumes it gets a consumer-side ambassador that sends each new connection to a healthy replica
    (C(balance)), checking each replica's published port by itself (C(health)); a replica host's own
    consumers use its own replica. Only the C(kernel) data plane balances; it is a replicated service's
    default.
  - The advertise address of a host is C(ambassador_advertise_address), else C(ansible_host), else the
    gathered default IPv4 address; it is needed only for hosts whose services have remote consumers.
extends_documentation_fragment:
  - crosshost.ambassador.common.controller
attributes:
  idempotent:
    support: full
    description: The same inventory gives the same plans.
options:
  services:
    description:
      - The topology's services, service name to settings. Defaults to the variable C(ambassador_services)
        of the host the task runs for; define it once, in C(group_vars/all).
      - "Settings of a service: C(host) (the inventory host it runs on) or C(hosts) (a list: it runs on each,
        a one-element list being the same as C(host)); C(port) (int) or C(ports)
        (list of int); C(published) (host port(s), default the same); C(protocol) (C(tcp) or C(udp));
        C(image), C(command), C(env), C(volumes) (the collection runs the service container);
        C(container) (the name of a container the user runs, default the service name);
        C(consumers) (hosts or groups consuming it); C(tls) (mutual TLS between its ambassadors);
        C(dataplane) (C(socat) or C(kernel), default O(dataplane), and C(kernel) for a service on several hosts);
        C(move) (C(make_before_break) or C(stop_first))."
      - "With several C(hosts): C(balance), how each consumer-side ambassador chooses a replica for a new
        connection: C(round_robin) (default: each healthy replica in turn) or C(failover) (the first healthy
        host in the order of C(hosts)); C(health), how it checks them: C({interval: 1, timeout: 1, fall: 2,
        rise: 2}) by default: a TCP connect to each replica's first published port every C(interval) seconds,
        given up after C(timeout) seconds (at most C(interval)); C(fall) failed checks in a row take a replica
        out, C(rise) passed ones bring it back. A replicated service must be tcp, without C(tls)."
    type: dict
  tls:
    description:
      - Mutual TLS between ambassadors for every tcp service whose own C(tls) setting does not say otherwise.
        Defaults to the variable C(ambassador_tls), else false.
    type: bool
  dataplane:
    description:
      - How ambassadors forward, for services that set no C(dataplane) of their own. Defaults to the variable
        C(ambassador_dataplane), else C(socat).
      - C(socat) forwards in user space (one process per connection) and needs no privilege.
      - C(kernel) forwards in the ambassador's own network namespace with iptables DNAT and MASQUERADE; its
        ambassadors get the capability C(NET_ADMIN) and the sysctl C(net.ipv4.ip_forward=1), and run the image
        C(ambassador_kernel_image) (with C(/bin/sh), C(iptables-restore) and C(getent), and busybox's C(nc) and
        C(timeout) for replicated services), which must then be set.
    type: str
    choices: [socat, kernel]
  as_json:
    description:
      - Return each host's plan as a JSON string in C(plans_json) instead of C(plans), and each host's
        C(environment) alone in C(environments). Ansible handles one string per host faster than thousands
        of nested dicts (measured in the README's "Performance").
        The C(crosshost.ambassador.topology) role uses it, and decodes a host's plan only where it is used.
    type: bool
    default: false
  hosts:
    description:
      - The hosts to plan for. Defaults to every inventory host. Hosts outside the play still take part
        (their services' addresses are needed); only the play's hosts are then reconciled.
    type: list
    elements: str
  placement:
    description:
      - Services to run on another host than their C(host) setting says, without editing the inventory.
        Defaults to the variable C(ambassador_placement_overrides).
      - "A mapping C({redis: host3}), or text as an AWX survey passes it, C(redis=host3) or
        C(redis=host3,echo=host1). Empty text or an empty mapping moves nothing."
      - "Several hosts (replicas) as a list, C({api: [host1, host2]}), or in text joined by C(+),
        C(api=host1+host2)."
      - Each named service must be defined and each host be an inventory host; otherwise the task fails
        like for any other invalid topology, naming C(ambassador_placement_overrides.<service>).
    type: raw
"""

EXAMPLES = r"""
- name: Plan once for every host
  crosshost.ambassador.plan:
  run_once: true
  register: topology

- name: Plan as if redis ran on host3 (what an AWX survey answer "redis=host3" does)
  crosshost.ambassador.plan:
    placement: redis=host3
  run_once: true
  register: moved

- name: Show host1's consumer environment
  ansible.builtin.debug:
    var: topology.plans.host1.environment
"""

RETURN = r"""
plans_json:
  description: Inventory hostname to that host's plan (as in C(plans)) encoded as JSON.
  returned: success, with O(as_json=true)
  type: dict
  sample: {host1: '{"host":"host1","docker_host":"unix:///var/run/docker.sock",...}'}
environments:
  description: Inventory hostname to that host's link-style environment (its plan's C(environment)).
  returned: success, with O(as_json=true)
  type: dict
  sample: {host1: {REDIS_PORT_6379_TCP: 'tcp://redis:6379'}}
plans:
  description: Inventory hostname to that host's plan.
  returned: success, unless O(as_json=true)
  type: dict
  contains:
    host:
      description: The hostname.
      type: str
    docker_host:
      description: The Docker API URL of the host (C(ambassador_docker_host)), or null to use the module's E(DOCKER_HOST), else the local socket.
      type: str
    docker:
      description: >-
        How the module reaches the engine: C(host), C(tls_verify), C(ca_path), C(client_cert), C(client_key),
        C(tls_hostname), C(api_version), C(use_ssh_client) from the C(ambassador_docker_*) variables; null
        ones are taken from the module's environment.
      type: dict
    network:
      description: The shared network.
      type: str
    containers:
      description:
        - The containers the host must run (input of M(crosshost.ambassador.apply)), each with every field of
          the one table of container fields, C(FIELDS) and C(PLAN_FIELDS) in C(plugins/module_utils/_container.py).
      type: list
      elements: dict
    consumes:
      description: Services that containers on the host connect to.
      type: list
      elements: str
    provides:
      description: Services placed on the host.
      type: list
      elements: str
    tls_dir:
      description: Where the host's TLS files must be (from C(ambassador_tls_dir)), or null when none of its ambassadors use TLS.
      type: str
    advertise_address:
      description: The host's advertise address, as resolved.
      type: str
    environment:
      description: >-
        Docker-links-style variables for consumer containers (C(REDIS_PORT_6379_TCP=tcp://redis:6379),
        C(..._ADDR), C(..._PORT), C(..._PROTO)); they name the service's alias, so they do not change when
        the service moves.
      type: dict
  sample:
    host1:
      host: host1
      docker_host: unix:///run/crosshost-lab/host1/docker.sock
      network: ambassador
      consumes: [redis]
      provides: []
      environment: {REDIS_PORT_6379_TCP: "tcp://redis:6379"}
      containers:
        - name: redis_ambassador
          kind: ambassador
          side: consumer
          service: redis
          image: docker.io/alpine/socat:1.8.0.3
          entrypoint: [socat]
          command: ["-b", "65536", "TCP-LISTEN:6379,fork,reuseaddr,backlog=4096,nodelay", "TCP:10.77.0.12:6379,nodelay"]
          dataplane: socat
          aliases: [redis]
problems:
  description: When the topology is invalid, every problem found, each naming the variable and the fix.
  returned: failure
  type: list
  elements: str
  sample:
    - "ambassador_services.redis.port: 70000 is out of range. Fix: use an integer from 1 to 65535."
tls:
  description: Whether any host's ambassadors use mutual TLS.
  returned: success
  type: bool
tls_hosts:
  description: The hosts whose ambassadors use mutual TLS, each with the addresses its certificate needs.
  returned: success
  type: dict
  sample: {host1: [10.77.0.11], host2: [10.77.0.12]}
summary:
  description: Counts of hosts, services and ambassadors planned.
  returned: success
  type: dict
  sample: {hosts: 3, services: 2, ambassadors: 4}
"""
