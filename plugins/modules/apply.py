#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: apply
short_description: Reconcile one Docker host's ambassadors and service containers with its plan
version_added: 0.1.0
description:
  - Takes the plan that M(crosshost.ambassador.plan) derived for one host and makes the host's
    Docker engine match it in one call. It creates the shared network if it is missing, creates
    missing containers, recreates containers whose spec changed, starts stopped ones and removes
    the ones this collection created that are no longer planned.
  - A container is recreated only when the hash of its spec (kept in the label
    C(crosshost.ambassador.spec-hash)) differs; the spec itself is kept in the label
    C(crosshost.ambassador.spec), which makes the diff exact.
  - It owns only containers labelled C(crosshost.ambassador.managed=true). A planned name taken by a
    container it does not own is an error, and then nothing at all is changed on the host.
  - Removing a container keeps its volumes. The shared network is never removed.
author:
  - crosshost.ambassador maintainers (@crosshost)
requirements:
  - docker (the Docker SDK for Python) >= 7.0 on the host that runs the module
attributes:
  check_mode:
    support: full
    description: Reports the actions the next real run would take, and changes nothing.
  diff_mode:
    support: full
    description: Shows each owned container's spec before and after.
  idempotent:
    support: full
    description: A second run with the same plan reports no change.
options:
  plan:
    description:
      - One host's plan, as returned for that host by M(crosshost.ambassador.plan) in C(plans).
    type: dict
    required: true
    suboptions:
      host:
        description: The inventory hostname the plan is for (used in messages).
        type: str
        required: true
      docker_host:
        description:
          - The Docker API URL of the host's engine, from C(ambassador_docker_host); the same as O(plan.docker.host).
          - Unset (null), the module's environment variable E(DOCKER_HOST) is used, else C(unix:///var/run/docker.sock).
        type: str
      docker:
        description:
          - How the module reaches the host's engine, from the host's C(ambassador_docker_*) variables.
          - Each setting left null is taken from the module's environment, as the Docker CLI reads it.
            TLS settings given by variables replace those of the environment one by one.
          - The engine's own CA is used even when E(REQUESTS_CA_BUNDLE) or E(CURL_CA_BUNDLE) is set
            (requests would otherwise verify against that bundle); proxies from the environment are not used.
        type: dict
        suboptions:
          host:
            description: C(ambassador_docker_host); else E(DOCKER_HOST), else C(unix:///var/run/docker.sock).
            type: str
          tls_verify:
            description:
              - C(ambassador_docker_tls_verify); else true when E(DOCKER_TLS_VERIFY) is set and not empty.
              - TLS is used for a C(tcp://) URL when this is true or a CA or client certificate is given.
            type: bool
          ca_path:
            description: C(ambassador_docker_ca_path), the CA certificate that signed the engine's; else C(ca.pem) in E(DOCKER_CERT_PATH).
            type: str
          client_cert:
            description: C(ambassador_docker_client_cert); else C(cert.pem) in E(DOCKER_CERT_PATH).
            type: str
          client_key:
            description: C(ambassador_docker_client_key); else C(key.pem) in E(DOCKER_CERT_PATH).
            type: str
          tls_hostname:
            description: C(ambassador_docker_tls_hostname), the name to expect in the engine's certificate; else E(DOCKER_TLS_HOSTNAME), else the URL's host.
            type: str
          api_version:
            description: C(ambassador_docker_api_version); else E(DOCKER_API_VERSION), else V(auto) (the engine's).
            type: str
          use_ssh_client:
            description:
              - C(ambassador_docker_use_ssh_client), for C(ssh://) URLs; default true, the OpenSSH client
                (the SDK's C(use_ssh_client)). The SDK still needs the package paramiko installed for C(ssh://).
            type: bool
      network:
        description: The user-defined bridge network that services, ambassadors and consumers share.
        type: str
        required: true
      containers:
        description: The containers the host must run.
        type: list
        elements: dict
        required: true
        suboptions:
          name:
            description: Container name (C(<service>) or C(<service>_ambassador)).
            type: str
            required: true
          role:
            description: What the container is.
            type: str
            required: true
            choices: [ambassador, service]
          side:
            description: For an ambassador, whether it sits with the provider or a consumer.
            type: str
            choices: [provider, consumer]
          service:
            description: The service the container belongs to.
            type: str
            required: true
          image:
            description: Image reference.
            type: str
            required: true
          entrypoint:
            description: Entrypoint, or null for the image's own.
            type: list
            elements: str
          command:
            description: Command (a string or a list), or null for the image's own.
            type: raw
          env:
            description: Environment variables.
            type: dict
            default: {}
          volumes:
            description: Volumes as C(source:/path[:mode]).
            type: list
            elements: str
            default: []
          network:
            description: Network to attach the container to.
            type: str
            required: true
          aliases:
            description: Network aliases (a consumer-side ambassador carries the service's name).
            type: list
            elements: str
            default: []
          published:
            description: Published ports.
            type: list
            elements: dict
            default: []
            suboptions:
              host_ip:
                description: Address on the host to publish on (the advertise address).
                type: str
                required: true
              host_port:
                description: Port on the host.
                type: int
                required: true
              port:
                description: Port in the container.
                type: int
                required: true
              protocol:
                description: Protocol.
                type: str
                choices: [tcp, udp]
                default: tcp
          init:
            description: Run an init process as PID 1 (used when one container runs several socat processes).
            type: bool
            default: false
          restart_policy:
            description: Docker restart policy.
            type: str
            default: unless-stopped
          user:
            description: User (C(uid:gid)) the container runs as, or null for the image's own.
            type: str
          read_only:
            description: Mount the container's root filesystem read-only.
            type: bool
            default: false
          cap_drop:
            description: Linux capabilities to drop (ambassadors drop C(ALL)).
            type: list
            elements: str
            default: []
          security_opt:
            description: Security options, e.g. C(no-new-privileges:true).
            type: list
            elements: str
            default: []
          memory:
            description: Memory limit in bytes, or null for none.
            type: int
          pids_limit:
            description: Most processes the container may run (socat forks one per connection), or null for none.
            type: int
          tls:
            description:
              - The container speaks mutual TLS on the network side, with the files of the plan's C(tls_dir)
                (mounted read-only at C(/tls)). It is recreated when O(tls_fingerprint) changes.
            type: bool
            default: false
          dataplane:
            description:
              - For an ambassador, how it forwards (C(socat) in user space, C(kernel) with iptables); null for a
                service container.
            type: str
          cap_add:
            description: Capabilities added to the container (the kernel data plane needs C(NET_ADMIN)).
            type: list
            elements: str
            default: []
          sysctls:
            description: Sysctls of the container's network namespace (the kernel data plane sets C(net.ipv4.ip_forward=1)).
            type: dict
            default: {}
          target:
            description:
              - For a provider-side ambassador, the container it forwards to. When no planned container
                has that name and none exists, a warning says so. Not part of the spec.
            type: str
      consumes:
        description: Services this host's containers connect to (informational).
        type: list
        elements: str
        default: []
      provides:
        description: Services placed on this host (informational).
        type: list
        elements: str
        default: []
      environment:
        description: Link-style variables for this host's consumer containers (informational).
        type: dict
        default: {}
      tls_dir:
        description: Directory on the host holding C(ca.pem), C(cert.pem) and C(key.pem), or null.
        type: str
      advertise_address:
        description: The host's advertise address (informational).
        type: str
  tls_fingerprint:
    description:
      - Identifies the TLS files in the plan's C(tls_dir) (as returned by M(crosshost.ambassador.tls)).
        Part of the spec of every container that uses TLS, so that new files recreate them.
    type: str
  timeout:
    description: Seconds to wait for each Docker API call.
    type: int
    default: 60
  stop_timeout:
    description:
      - Seconds a service container gets to stop after SIGTERM before it is killed, when it is removed
        or recreated, so that it can save its data. Ambassadors are removed at once.
    type: int
    default: 10
  phases:
    description:
      - Which of the host's actions to take, in their order. V(make) creates the network, pulls images,
        creates and starts containers (and removes those whose published port a new container needs);
        V(switch) recreates changed containers; V(break) removes containers no longer planned.
      - "Run V([make]) on every host of the play, then V([switch]), then V([break]), to change a topology
        make-before-break, as the M(crosshost.ambassador.topology) role does. A moved service then runs on its
        new host before its consumers' ambassadors switch to it; consumers see a cut of their open
        connections instead of a gap as long as the move."
      - V(make) also recreates an ambassador that becomes provider-side (a service moved to this host), and
        V(break) one that stops being provider-side (a service moved away), so that consumers elsewhere keep
        a working path until they have switched.
      - Whatever the phases, a changed ambassador whose old and new selves publish no port in common (a
        consumer-side one, or one that changes sides) is replaced side by side; the new one starts, then
        the old one is removed.
    type: list
    elements: str
    choices: [make, switch, break]
    default: [make, switch, break]
seealso:
  - module: crosshost.ambassador.plan
"""

EXAMPLES = r"""
- name: Plan every host's ambassadors once, on the controller
  crosshost.ambassador.plan:
  run_once: true
  register: topology

- name: Reconcile this host
  crosshost.ambassador.apply:
    plan: "{{ topology.plans[inventory_hostname] }}"
"""

RETURN = r"""
actions:
  description:
    - What was done (or, in check mode, would be done), in order, each with its reason.
    - C(kind) is container, network (created when missing) or image (pulled when missing);
      C(action) is create, recreate, start, remove or pull.
  returned: always
  type: list
  elements: dict
  sample:
    - action: recreate
      kind: container
      name: redis_ambassador
      reason: "changed: command, env"
    - action: remove
      kind: container
      name: web_ambassador
      reason: no longer in the plan for this host
summary:
  description: How many of each action.
  returned: always
  type: dict
  sample: {recreate: 1, remove: 1}
unchanged:
  description: Planned containers that were already as planned.
  returned: always
  type: list
  elements: str
  sample: [redis]
containers:
  description: Container name to id for every planned container after the run (absent ids in check mode).
  returned: always
  type: dict
  sample: {redis_ambassador: 3f2c0e...}
pending:
  description: How many actions the phases not taken have for this host.
  returned: always
  type: dict
  sample: {switch: 1, break: 0}
network:
  description: The shared network, and whether it had to be created.
  returned: always
  type: dict
  sample: {name: ambassador, created: false}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.crosshost.ambassador.plugins.module_utils._connection import ARGUMENT_SPEC as CONNECTION_OPTIONS
from ansible_collections.crosshost.ambassador.plugins.module_utils._docker_host import DOCKER_IMPORT_ERROR, HAS_DOCKER, EngineError, connect
from ansible_collections.crosshost.ambassador.plugins.module_utils._reconcile import (
    PHASES, decide, replace_side_by_side, split_phases, summarise)


def _public(action):
    """An action as returned to the user: no spec, no ids."""
    return dict((k, v) for k, v in action.items() if k not in ("spec", "id"))


class Reconciler(object):
    def __init__(self, module):
        self.module = module
        self.plan = module.params["plan"]
        self.where = "host %s" % self.plan["host"]
        self.done = []
        self.before = {}

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg="%s: %s" % (self.where, msg), actions=[_public(a) for a in self.done], **kwargs)

    def run(self):
        plan, check_mode = self.plan, self.module.check_mode
        try:
            engine = connect(dict(plan["docker"] or {}, host=plan["docker_host"]), timeout=self.module.params["timeout"])
            self.where = "host %s (Docker engine at %s)" % (plan["host"], engine.url)
            existing = engine.containers()
        except EngineError as exc:
            self.fail(str(exc))

        for container in plan["containers"]:
            container["tls_fingerprint"] = self.module.params["tls_fingerprint"] if container["tls"] else None
        decision = decide(plan["containers"], existing)
        self.before = decision["before"]
        if decision["conflicts"]:
            self.fail("%s: containers that crosshost.ambassador did not create (they lack the label "
                      "crosshost.ambassador.managed=true) stand in the way, and it leaves them alone, so nothing "
                      "was changed on this host. Fix: remove or rename those containers or free their ports, or "
                      "rename the service(s) or change their published ports"
                      % "; ".join(decision["conflicts"]),
                      conflicts=decision["conflicts"])
        self._warn_missing_targets(existing)

        wanted = self.module.params["phases"]
        phases = split_phases(decision["actions"], decision["before"])
        taken = set(id(a) for p in wanted for a in phases[p])
        selected = [a for a in decision["actions"] if id(a) in taken]
        steps = []
        network_created = False
        try:
            if "make" in wanted and engine.network(plan["network"]) is None:
                steps.append({"action": "create", "kind": "network", "name": plan["network"],
                              "reason": "network %s does not exist" % plan["network"]})
                network_created = True
            images = sorted(set(a["spec"]["image"] for a in selected if "spec" in a))
            for image in images:
                if not engine.has_image(image):
                    steps.append({"action": "pull", "kind": "image", "name": image,
                                  "reason": "image %s is not on the engine" % image})
            steps.extend(selected)

            ids = dict((c["name"], c["id"]) for c in existing)
            for step in steps:
                if not check_mode:
                    self._execute(engine, step, ids)
                self.done.append(step)
        except EngineError as exc:
            self.fail(str(exc))

        result = {
            "changed": bool(steps),
            "actions": [_public(a) for a in steps],
            "summary": summarise(steps),
            "unchanged": sorted(decision["unchanged"]),
            "containers": dict((c["name"], None if check_mode else ids.get(c["name"])) for c in plan["containers"]),
            "network": {"name": plan["network"], "created": network_created},
            "pending": dict((p, len(phases[p])) for p in PHASES if p not in wanted),
        }
        if self.module._diff:
            result["diff"] = {"before": {"containers": decision["before"]},
                              "after": {"containers": decision["after"]},
                              "before_header": "%s containers" % plan["host"],
                              "after_header": "%s containers" % plan["host"]}
        self.module.exit_json(**result)

    def _execute(self, engine, step, ids):
        action, kind = step["action"], step["kind"]
        if kind == "network":
            engine.create_network(step["name"])
        elif kind == "image":
            engine.pull(step["name"])
        elif action == "remove":
            engine.remove(step["id"], step["name"], stop_timeout=self._stop_timeout(step.get("role")))
            ids.pop(step["name"], None)
        elif action == "recreate" and replace_side_by_side(step["spec"], self.before.get(step["name"])):
            # The new one is up before the old one goes: both carry the alias for a moment.
            old_name = "%s.replaced-%s" % (step["name"], step["id"][:12])
            engine.rename(step["id"], step["name"], old_name)
            try:
                ids[step["name"]] = engine.create(step["spec"])
            except EngineError:
                engine.rename(step["id"], old_name, step["name"])
                raise
            engine.remove(step["id"], old_name)
        elif action == "recreate":
            engine.remove(step["id"], step["name"], stop_timeout=self._stop_timeout(step["spec"]["role"]))
            ids[step["name"]] = engine.create(step["spec"])
        elif action == "create":
            ids[step["name"]] = engine.create(step["spec"])
        elif action == "start":
            engine.start(step["id"], step["name"])

    def _stop_timeout(self, role):
        """Service containers stop gracefully, so the service can save its data; ambassadors hold none."""
        return self.module.params["stop_timeout"] if role == "service" else None

    def _warn_missing_targets(self, existing):
        present = set(c["name"] for c in existing) | set(c["name"] for c in self.plan["containers"])
        for ct in self.plan["containers"]:
            target = ct.get("target")
            if target and target not in present:
                self.module.warn("%s: the ambassador %s forwards to container %s, which does not exist; start it on "
                                 "network %s (or set image on the service to have the collection run it)"
                                 % (self.where, ct["name"], target, self.plan["network"]))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            plan=dict(type="dict", required=True, options=dict(
                host=dict(type="str", required=True),
                docker_host=dict(type="str"),
                docker=dict(type="dict", options=CONNECTION_OPTIONS),
                network=dict(type="str", required=True),
                containers=dict(type="list", elements="dict", required=True, options=dict(
                    name=dict(type="str", required=True),
                    role=dict(type="str", required=True, choices=["ambassador", "service"]),
                    side=dict(type="str", choices=["provider", "consumer"]),
                    service=dict(type="str", required=True),
                    image=dict(type="str", required=True),
                    entrypoint=dict(type="list", elements="str"),
                    command=dict(type="raw"),
                    env=dict(type="dict", default={}),
                    volumes=dict(type="list", elements="str", default=[]),
                    network=dict(type="str", required=True),
                    aliases=dict(type="list", elements="str", default=[]),
                    published=dict(type="list", elements="dict", default=[], options=dict(
                        host_ip=dict(type="str", required=True),
                        host_port=dict(type="int", required=True),
                        port=dict(type="int", required=True),
                        protocol=dict(type="str", choices=["tcp", "udp"], default="tcp"),
                    )),
                    init=dict(type="bool", default=False),
                    restart_policy=dict(type="str", default="unless-stopped"),
                    dataplane=dict(type="str"),
                    cap_add=dict(type="list", elements="str", default=[]),
                    sysctls=dict(type="dict", default={}),
                    target=dict(type="str"),
                    user=dict(type="str"),
                    read_only=dict(type="bool", default=False),
                    cap_drop=dict(type="list", elements="str", default=[]),
                    security_opt=dict(type="list", elements="str", default=[]),
                    memory=dict(type="int"),
                    pids_limit=dict(type="int"),
                    tls=dict(type="bool", default=False),
                )),
                consumes=dict(type="list", elements="str", default=[]),
                provides=dict(type="list", elements="str", default=[]),
                environment=dict(type="dict", default={}),
                tls_dir=dict(type="str"),
                advertise_address=dict(type="str"),
            )),
            tls_fingerprint=dict(type="str"),
            timeout=dict(type="int", default=60),
            stop_timeout=dict(type="int", default=10),
            phases=dict(type="list", elements="str", default=list(PHASES), choices=list(PHASES)),
        ),
        supports_check_mode=True,
    )
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    Reconciler(module).run()


if __name__ == "__main__":
    main()
