#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: probe
short_description: Connect to a service by its name from a short-lived container on a Docker host's ambassador network
version_added: 0.1.0
description:
  - Starts a throw-away container on the network that services, ambassadors and consumers share on one Docker host,
    connects from it to C(<service>:<port>) the way a consumer container does (through the consumer-side ambassador
    when the service runs on another host), sends O(send) and returns what came back.
  - Fails when the connection fails, or when O(expect) is given and is not in the answer. Use it to prove that a
    topology works end to end (Molecule's verify, a smoke test after site.yml).
  - The container runs C(/bin/sh) and C(socat) from O(image); the ambassador image has both. It is removed afterwards,
    also on failure or timeout, so nothing is left on the host.
  - For a service on several hosts, it also returns which replicas the host's consumer-side ambassador currently
    forwards to (RV(healthy_replicas)), as that ambassador's health checks last decided.
extends_documentation_fragment:
  - crosshost.ambassador.common.engine
attributes:
  check_mode:
    support: full
    description: Runs the probe in check mode too; it leaves nothing behind.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  idempotent:
    support: full
    description: Never reports a change.
options:
  docker_host:
    description:
      - The Docker API URL of the host to probe from (C(ambassador_docker_host)); the same as O(docker.host).
      - Unset, the module's environment variable E(DOCKER_HOST) is used, else C(unix:///var/run/docker.sock).
    type: str
  docker:
    description:
      - How to reach the engine, as in M(crosshost.ambassador.apply)'s C(plan.docker); pass the host's plan's,
        C({{ ambassador_plan.docker }}). Settings left null come from the module's environment.
    type: dict
    suboptions:
      host:
        description: C(ambassador_docker_host); else E(DOCKER_HOST), else the local socket.
        type: str
      tls_verify:
        description: C(ambassador_docker_tls_verify); else E(DOCKER_TLS_VERIFY).
        type: bool
      ca_path:
        description: C(ambassador_docker_ca_path); else C(ca.pem) in E(DOCKER_CERT_PATH).
        type: str
      client_cert:
        description: C(ambassador_docker_client_cert); else C(cert.pem) in E(DOCKER_CERT_PATH).
        type: str
      client_key:
        description: C(ambassador_docker_client_key); else C(key.pem) in E(DOCKER_CERT_PATH).
        type: str
      tls_hostname:
        description: C(ambassador_docker_tls_hostname); else E(DOCKER_TLS_HOSTNAME).
        type: str
      api_version:
        description: C(ambassador_docker_api_version); else E(DOCKER_API_VERSION), else V(auto).
        type: str
      use_ssh_client:
        description: C(ambassador_docker_use_ssh_client), for C(ssh://) URLs (default true).
        type: bool
  provider_docker:
    description:
      - How to reach the engine of the host that provides O(service) (that host's C(ambassador_plan.docker)), with the
        same keys as O(docker), checked as strictly (an unknown key or a wrong type fails the probe, naming it).
        Optional.
      - When given, the probe reads the log of the provider-side ambassador C(<service>_ambassador) there after
        connecting. If that ambassador refused connections during the probe (its allow-list lets in only the consumers'
        C(ambassador_source_address)), the probe fails with C(refused by the provider's allow-list), naming the source
        address the provider saw, also when the connection itself looked fine (a refused TCP connection is accepted,
        then closed at once, so it otherwise reads as an empty answer).
      - Such a refusal means that the consumer's connections reach the provider from another address than its
        C(ambassador_source_address) (NAT, a rootless engine, Docker's userland proxy); set that variable to the
        address named.
    type: dict
  network:
    description: The shared network (C(ambassador_network)).
    type: str
    default: ambassador
  image:
    description: An image with C(/bin/sh) and C(socat), already on the engine; normally C(ambassador_image).
    type: str
    required: true
  service:
    description: The name to connect to, as consumer containers do (the service's name).
    type: str
    required: true
  port:
    description: The service port.
    type: int
    required: true
  protocol:
    description: C(tcp), or C(udp) (a datagram is sent and one answer awaited).
    type: str
    choices: [tcp, udp]
    default: tcp
  send:
    description: What to send once connected (e.g. C("PING\r\n") for redis). Nothing by default.
    type: str
    default: ""
  expect:
    description: Text that must occur in the answer; without it, a successful connection is enough.
    type: str
  timeout:
    description: Seconds to wait for the answer (and, times three, for the whole probe).
    type: int
    default: 5
seealso:
  - module: crosshost.ambassador.apply
"""

EXAMPLES = r"""
- name: Redis on another host answers PING, from host1, by its name
  crosshost.ambassador.probe:
    docker: "{{ ambassador_plan.docker }}"
    image: "{{ ambassador_image }}"
    service: redis
    port: 6379
    send: "PING\r\n"
    expect: "+PONG"
  retries: 5
  delay: 1
  register: probe
  until: probe is succeeded
"""

RETURN = r"""
received:
  description: What the service answered (stdout and stderr of the probe's socat).
  returned: always
  type: str
  sample: "+PONG\r\n"
exit_code:
  description: Exit code of the probe container (0 when the connection worked).
  returned: always
  type: int
  sample: 0
target:
  description: The address the probe connected to.
  returned: always
  type: str
  sample: redis:6379
healthy_replicas:
  description:
    - For a service on several hosts, the advertise addresses of the replicas that the consumer-side ambassador
      C(<service>_ambassador) on the probed host forwards new connections to, as its log last said (a replica that
      failed its health checks is not in it; an empty list means none is healthy).
    - V(null) when there is no such ambassador on the host, or it does not balance (a service on one host).
  returned: always
  type: list
  elements: str
  sample: [10.77.16.12, 10.77.16.13]
refused_sources:
  description: Source addresses the provider-side ambassador refused during the probe (only with O(provider_docker)).
  returned: always
  type: list
  elements: str
  sample: [10.77.16.99]
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.crosshost.ambassador.plugins.module_utils._connection import ARGUMENT_SPEC as CONNECTION_OPTIONS
from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import healthy_replicas, refused_sources
from ansible_collections.crosshost.ambassador.plugins.module_utils._engine import (
    EngineError, connect, require_sdk)
from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import ambassador_name

# The probe's program: send $PROBE_SEND, print the answer. -T ends an idle connection, -t waits for the
# answer after sending.
PROBE_SCRIPT = 'printf "%s" "$PROBE_SEND" | socat -t "$PROBE_TIMEOUT" -T "$PROBE_TIMEOUT" - "$PROBE_ADDRESS"'
PROBE_LABEL = "crosshost.ambassador.probe"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            docker_host=dict(type="str"),
            docker=dict(type="dict", options=CONNECTION_OPTIONS),
            # The keys of docker, checked below: documented once, there.
            provider_docker=dict(type="dict"),
            network=dict(type="str", default="ambassador"),
            image=dict(type="str", required=True),
            service=dict(type="str", required=True),
            port=dict(type="int", required=True),
            protocol=dict(type="str", choices=["tcp", "udp"], default="tcp"),
            send=dict(type="str", default=""),
            expect=dict(type="str"),
            timeout=dict(type="int", default=5),
        ),
        supports_check_mode=True,
    )
    require_sdk(module, missing_required_lib("docker"))
    p = module.params
    provider_settings = None
    if p["provider_docker"] is not None:
        checked = ArgumentSpecValidator(CONNECTION_OPTIONS).validate(p["provider_docker"])
        if checked.error_messages:
            module.fail_json(msg="provider_docker: %s. Fix: use the keys of the docker option (%s)"
                             % ("; ".join(checked.error_messages), ", ".join(sorted(CONNECTION_OPTIONS))))
        provider_settings = checked.validated_parameters
    target = "%s:%d" % (p["service"], p["port"])
    address = ("UDP:%s" if p["protocol"] == "udp" else "TCP:%s") % target
    env = {"PROBE_SEND": p["send"], "PROBE_TIMEOUT": str(p["timeout"]), "PROBE_ADDRESS": address}
    settings = dict(p["docker"] or {})
    if p["docker_host"]:
        settings["host"] = p["docker_host"]
    where = "from network %s" % p["network"]
    refused, healthy = [], None
    try:
        engine = connect(settings, timeout=p["timeout"] * 3 + 10)
        where = "from network %s on the Docker engine at %s" % (p["network"], engine.url)
        # The engines' clocks are this machine's or close to it; a second of margin for the log's timestamps.
        started = time.time() - 1
        code, received = engine.run_probe(p["image"], p["network"], ["/bin/sh", "-c"], [PROBE_SCRIPT], env,
                                          p["timeout"] * 3, {PROBE_LABEL: "true"})
        healthy = healthy_replicas(engine.logs_since(ambassador_name(p["service"]), 1) or "")
        if provider_settings:
            provider_engine = connect(provider_settings, timeout=p["timeout"] * 3 + 10)
            refused = refused_sources(provider_engine.logs_since(ambassador_name(p["service"]), started) or "")
    except EngineError as exc:
        module.fail_json(msg="probing %s %s: %s" % (target, where, exc), target=target, received="", exit_code=-1,
                         refused_sources=[], healthy_replicas=None)
    result = dict(changed=False, received=received, exit_code=code, target=target, refused_sources=refused,
                  healthy_replicas=healthy)
    if refused:
        module.fail_json(msg="cannot connect to %s %s: refused by the provider's allow-list: %s on the Docker engine at "
                             "%s refused connections from %s, which is not an address it lets in. Fix: set "
                             "ambassador_source_address of the consuming host to the address its connections come "
                             "from (%s), and run site.yml again"
                             % (target, where, ambassador_name(p["service"]), provider_engine.url, ", ".join(refused),
                                refused[0]), **result)
    if code != 0:
        module.fail_json(msg="cannot connect to %s %s: %s" % (target, where, received.strip() or "exit code %d" % code),
                         **result)
    if p["expect"] is not None and p["expect"] not in received:
        module.fail_json(msg="%s answered %r %s, which does not contain %r" % (target, received, where, p["expect"]),
                         **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
