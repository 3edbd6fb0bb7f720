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
  - A few planned files are not part of the spec (a balancing ambassador's list of replicas, a provider-side
    kernel ambassador's allowed peers). They are put in
    the container before it starts, and new text is put in the running container (action C(deliver)), which
    stays, and so do the connections open through it.
  - It owns only containers labelled C(crosshost.ambassador.managed=true). A planned name taken by a
    container it does not own is an error, and then nothing at all is changed on the host.
  - Removing a container keeps its volumes. The shared network is never removed.
extends_documentation_fragment:
  - crosshost.ambassador.common.engine
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
      - One host's plan, as M(crosshost.ambassador.plan) returns it for that host in RV(crosshost.ambassador.plan#module:plans)
        (the topology role's C(ambassador_plan)), where its fields are described, or its JSON text (as in
        RV(crosshost.ambassador.plan#module:plans_json)). It is made by the planner, not written by hand.
    type: dict
    required: true
  tls_fingerprint:
    description:
      - Identifies the TLS files in the plan's C(tls_dir) (as returned by M(crosshost.ambassador.tls)).
        Part of the spec of every container that uses TLS (mounted read-only at C(/tls)), so that new
        files recreate them.
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
      - Run V([make]) on every host of the play, then V([switch]), then V([break]), to change a topology
        make-before-break, as the M(crosshost.ambassador.topology) role does (the collection's README, "Moves",
        says why and what guards a move).
      - V(make) also recreates an ambassador that becomes provider-side (a service moved to this host), and
        V(break) one that stops being provider-side (a service moved away), so that consumers elsewhere keep
        a working path until they have switched.
      - Whatever the phases, a changed ambassador whose old and new selves publish no port in common (a
        consumer-side one, or one that changes sides) is replaced side by side; the new one starts, then
        the old one is removed. On an engine that cannot change a container's restart policy (Podman before
        5.0, whose compatible API has no container update), it is replaced stop-first instead (a short gap).
      - V(stop) stops, on the host a service leaves, the service containers of services that move
        stop-first (O(stop_first)); they are removed in V(break). An empty list takes no action; it
        reports what each phase has to do (RV(pending), RV(pending_services)) and changes nothing.
    type: list
    elements: str
    choices: [stop, make, switch, break]
    default: [stop, make, switch, break]
  stop_first:
    description:
      - Services that move stop-first (C(move) of M(crosshost.ambassador.plan); the default for a service
        with volumes). Their service container is stopped on the old host in phase V(stop), before the
        new host starts it in V(make).
    type: list
    elements: str
    default: []
  hold:
    description:
      - Services whose move is called off, because the host that was to take them failed. Their
        actions are not taken (they are returned in RV(held)); no consumer switches to a place that
        is not up, and the old place is not let go.
    type: list
    elements: str
    default: []
  resume:
    description:
      - Services whose stop-first move is called off. Their service containers that V(stop) stopped on
        this host are started again, and nothing else is done.
    type: list
    elements: str
    default: []
  lock:
    description:
      - The run's lock, as taken by M(crosshost.ambassador.lock) on this engine (C(id), C(lease)), and the
        run's C(controller) and C(pid) (as M(crosshost.ambassador.plan) returns them in C(run)).
        Before any change the module checks that the run still holds it and renews its lease, and it
        keeps renewing it while it works; without the lock nothing is changed.
      - When the run is interrupted (a signal, or the C(pid) gone on the same machine) the module stops
        between two steps, so that nothing is left half done.
    type: dict
  ready_timeout:
    description:
      - Seconds that a service container and a provider-side ambassador created or started in
        V(make) get to be running (and, on the socat plane, the service to accept a TCP connection
        through the ambassador's network). Otherwise the step fails, and what it made is undone.
      - Also the seconds that a running balancing ambassador given a new replica list (C(deliver)) gets to
        adopt it (it reads the list once per health interval), before the run goes on.
    type: int
    default: 30
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
      C(action) is create, recreate, deliver, start, stop, remove or pull; C(phase) the phase it belongs to
      (O(phases)).
    - A deliver puts C(files) (path to text) in a container that stays, e.g. a balancing ambassador's
      replicas (README, Replicas) or a provider-side kernel ambassador's allowed peers, whose C(allow)
      then says which peers it lets in and takes out (C(added), C(removed)).
    - A recreate's C(method) is C(side_by_side) (the new container runs before the old one goes) or
      C(stop_first) (the old one is removed first).
  returned: always
  type: list
  elements: dict
  sample:
    - action: recreate
      kind: container
      name: redis_ambassador
      phase: switch
      method: side_by_side
      reason: "changed: command, env"
    - action: remove
      kind: container
      name: web_ambassador
      phase: break
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
pending_services:
  description: For each phase not taken, the services its actions are for.
  returned: always
  type: dict
  sample: {switch: [redis], break: []}
held:
  description: The actions not taken because their service is in O(hold).
  returned: always
  type: list
  elements: dict
  sample: [{action: recreate, kind: container, name: redis_ambassador, service: redis}]
volumes_left:
  description:
    - Named volumes that stay on this host because the service container that used them is removed
      (a service moved away or dropped). The data is not carried to the new host.
  returned: always
  type: dict
  sample: {redis: [redis-data]}
network:
  description: The shared network, and whether it had to be created.
  returned: always
  type: dict
  sample: {name: ambassador, created: false}
"""

import os
import signal
import socket
import threading
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import (
    DELIVERED_LOGS, addresses_of, adopted)
from ansible_collections.crosshost.ambassador.plugins.module_utils._engine import (
    EngineError, connect, require_sdk)
from ansible_collections.crosshost.ambassador.plugins.module_utils._lock import LockError, renew
from ansible_collections.crosshost.ambassador.plugins.module_utils._reconcile import (
    OWNER_LABEL, PHASES, decide, held_back, named_volumes, pending, resume_actions, select, summarise,
    updates_restart_policy)


def _public(action):
    """An action as returned to the user: no spec, no ids."""
    return dict((k, v) for k, v in action.items()
                if k not in ("spec", "id") and not (k == "files" and not v))


class LeaseKeeper(threading.Thread):
    """Renews the run's lock on the engine while the module works (a pull can outlast a lease)."""

    def __init__(self, engine, run_id, every):
        super(LeaseKeeper, self).__init__()
        self.daemon = True
        self.engine = engine
        self.run_id, self.every = run_id, every
        self.lost = None
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(self.every):
            try:
                renew(self.engine, self.run_id)
            except (LockError, EngineError) as exc:
                self.lost = str(exc)
                return


class Interruption(object):
    """Stops the module at a safe point, between two steps, when its run is interrupted: a signal
    (SIGINT, SIGTERM, SIGHUP: Ctrl-C, a killed ansible-playbook, a dropped SSH session), or the
    ansible-playbook process gone when the module runs on the controller's machine. A side-by-side
    replacement (new ambassador up, old one removed) is one step: never left half done."""

    def __init__(self, run):
        self.reason = None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        pid = (run or {}).get("pid")
        if pid and (run or {}).get("controller") == socket.gethostname() and self._alive(pid):
            watcher = threading.Thread(target=self._watch, args=(int(pid),))
            watcher.daemon = True
            watcher.start()

    def _on_signal(self, signum, _frame):
        self.reason = "signal %d" % signum

    @staticmethod
    def _alive(pid):
        try:
            os.kill(int(pid), 0)
        except (OSError, ValueError):
            return False
        return True

    def _watch(self, pid):
        while self.reason is None:
            if not self._alive(pid):
                self.reason = "ansible-playbook (pid %d) ended" % pid
            time.sleep(0.5)


class Reconciler(object):
    def __init__(self, module):
        self.module = module
        self.plan = module.params["plan"]
        self.kinds = dict((ct["name"], ct["kind"]) for ct in self.plan["containers"])
        self.where = "host %s" % self.plan["host"]
        self.done = []
        self.undo = []
        self.before = {}
        self.files_before = {}
        self.states = {}
        self.keeper = None

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg="%s: %s" % (self.where, msg), actions=[_public(a) for a in self.done], **kwargs)

    def run(self):
        plan, params, check_mode = self.plan, self.module.params, self.module.check_mode
        try:
            engine = self._connect()
            self.where = "host %s (Docker engine at %s)" % (plan["host"], engine.url)
            existing = engine.containers()
            self._read_files(engine, existing)
            self.states = dict((c["name"], c.get("state")) for c in existing)
            networks = [plan["network"]] if engine.network(plan["network"]) is not None else []
            images = [i for i in sorted(set(ct["image"] for ct in plan["containers"])) if engine.has_image(i)]
            side_by_side = updates_restart_policy(engine.version())
        except EngineError as exc:
            self.fail(str(exc))
        decision = decide(plan["containers"], existing, stop_first=params["stop_first"],
                          tls_fingerprint=params["tls_fingerprint"], network=plan["network"], networks=networks,
                          images=images, side_by_side=side_by_side)
        self.before = decision["before"]
        self.files_before = decision["files_before"]
        if decision["conflicts"]:
            self.fail("%s: containers that crosshost.ambassador did not create (they lack the label "
                      "crosshost.ambassador.managed=true) stand in the way, and it leaves them alone, so nothing "
                      "was changed on this host. Fix: remove or rename those containers or free their ports, or "
                      "rename the service(s) or change their published ports"
                      % "; ".join(decision["conflicts"]),
                      conflicts=decision["conflicts"])
        self._warn_missing_targets(existing)

        if params["resume"]:
            wanted = []
            steps, held = held_back(resume_actions(existing, params["resume"]), params["hold"])
        else:
            wanted = params["phases"]
            steps, held = select(decision["steps"], wanted, params["hold"])

        left = self._volumes_left(steps)
        for service, volumes in sorted(left.items()):
            self.module.warn("%s: service %s %s its data: volume(s) %s stay on this host and are not carried to "
                             "its new host. To carry them, back them up and restore them there, or use storage both "
                             "hosts share (README: Moves)"
                             % (self.where, service, "would leave" if check_mode else "leaves", ", ".join(volumes)))

        ids = dict((c["name"], c["id"]) for c in existing)
        if steps and not check_mode:
            interruption = Interruption(params["lock"])
            self._hold_lock(engine)
            try:
                for step in steps:
                    if self.keeper is not None and self.keeper.lost:
                        raise EngineError(self.keeper.lost)
                    if interruption.reason:
                        raise EngineError("the run was interrupted (%s); stopped between two steps. Fix: run again, "
                                          "it converges from here" % interruption.reason)
                    self._execute(engine, step, ids)
                    self.done.append(step)
                if "make" in wanted:
                    self._wait_ready(engine, [s for s in steps if s.get("kind") == "container"], ids)
                self._wait_adopted(engine, [s for s in steps if s["action"] == "deliver"])
            except (EngineError, LockError) as exc:
                undone = self._undo(engine, ids) if "make" in wanted or "stop" in wanted else []
                self.fail("%s%s" % (exc, "; undone on this host: %s" % ", ".join(undone) if undone else ""))
            finally:
                if self.keeper is not None:
                    self.keeper.done.set()

        pending_steps, pending_services = pending(decision["steps"], wanted)
        result = {
            "changed": bool(steps),
            "actions": [_public(a) for a in steps],
            "summary": summarise(steps),
            "unchanged": sorted(decision["unchanged"]),
            "containers": dict((c["name"], None if check_mode else ids.get(c["name"])) for c in plan["containers"]),
            "network": {"name": plan["network"], "created": any(s["kind"] == "network" for s in steps)},
            "pending": pending_steps,
            "pending_services": pending_services,
            "held": [_public(a) for a in held],
            "volumes_left": left,
        }
        if self.module._diff:
            result["diff"] = {"before": dict({"containers": decision["before"]},
                                             **({"files": decision["files_before"]} if decision["files_before"] else {})),
                              "after": dict({"containers": decision["after"]},
                                            **({"files": decision["files_after"]} if decision["files_after"] else {})),
                              "before_header": "%s containers" % plan["host"],
                              "after_header": "%s containers" % plan["host"]}
        self.module.exit_json(**result)

    def _hold_lock(self, engine):
        """Before the first change: the run must still hold its lock here; keep it while working."""
        lock = self.module.params["lock"]
        if not lock:
            return
        try:
            renew(engine, lock["id"])
        except LockError as exc:
            self.fail(str(exc))
        lease = int(lock.get("lease") or 60)
        # A client of its own: the module's one is busy with the steps meanwhile.
        self.keeper = LeaseKeeper(self._connect(), lock["id"], max(1.0, lease / 3.0))
        self.keeper.start()

    def _files_before(self, name):
        """The files container ``name`` held before this run (those it had)."""
        return dict((path, text) for path, text in (self.files_before.get(name) or {}).items() if text is not None)

    def _read_files(self, engine, existing):
        """Add to each owned container of ``existing`` that is planned with ``files`` what those files hold now."""
        paths = dict((ct["name"], sorted(ct.get("files") or {})) for ct in self.plan["containers"] if ct.get("files"))
        for found in existing:
            if paths.get(found["name"]) and (found.get("labels") or {}).get(OWNER_LABEL) == "true":
                found["files"] = engine.read_files(found["id"], found["name"], paths[found["name"]])

    def _connect(self):
        return connect(self.plan["docker"], timeout=self.module.params["timeout"])

    def _volumes_left(self, steps):
        left = {}
        for step in steps:
            if step["action"] == "remove" and step.get("container_kind") == "service":
                volumes = named_volumes(self.before.get(step["name"]))
                if volumes:
                    left[step["service"]] = volumes
        return left

    def _execute(self, engine, step, ids):
        action, kind = step["action"], step["kind"]
        if kind == "network":
            engine.create_network(step["name"])
        elif kind == "image":
            engine.pull(step["name"])
        elif action == "stop":
            engine.stop(step["id"], step["name"], timeout=self.module.params["stop_timeout"])
            self.undo.append(("start", step["id"], step["name"]))
        elif action == "remove":
            engine.remove(step["id"], step["name"], stop_timeout=self._stop_timeout(step.get("container_kind")))
            ids.pop(step["name"], None)
        elif action == "recreate":
            ids[step["name"]] = engine.replace(
                step["id"], step["spec"], step["method"], stop_timeout=self._stop_timeout(step["spec"]["kind"]),
                running=self.states.get(step["name"]) == "running",
                restart_policy=(self.before.get(step["name"]) or {}).get("restart_policy"), files=step.get("files"))
            self.undo.append(("restore", ids[step["name"]], step["name"]))
        elif action == "create":
            ids[step["name"]] = engine.create(step["spec"], step.get("files"))
            self.undo.append(("remove", ids[step["name"]], step["name"]))
        elif action == "deliver":
            engine.put_files(step["id"], step["name"], step["files"])
            self.undo.append(("files", step["id"], step["name"]))
        elif action == "start":
            engine.start(step["id"], step["name"])

    def _undo(self, engine, ids):
        """Take back what this step made, newest first, so that a failed step leaves the host as it
        was: created containers go, recreated ones come back as they were (from the spec kept in
        their label), stopped ones start again. Best effort: what cannot be undone is said."""
        undone = []
        for what, container_id, name in reversed(self.undo):
            try:
                if what == "start":
                    engine.start(container_id, name)
                    undone.append("started %s again" % name)
                    continue
                if what == "files":
                    engine.put_files(container_id, name, self._files_before(name))
                    undone.append("%s has its files back as they were" % name)
                    continue
                engine.remove(container_id, name, stop_timeout=self._stop_timeout(self.kinds.get(name)))
                ids.pop(name, None)
                if what == "restore" and self.before.get(name):
                    ids[name] = engine.create(self.before[name], self._files_before(name))
                    undone.append("%s back as it was" % name)
                else:
                    undone.append("removed %s" % name)
            except EngineError as exc:
                undone.append("could not undo %s (%s)" % (name, exc))
        self.undo = []
        return undone

    def _wait_ready(self, engine, steps, ids):
        """A service container and a provider-side ambassador that this step created, recreated or
        started must be running, and (socat plane, tcp) the service must accept a connection from
        its ambassador, before anyone is switched to them."""
        touched = set(s["name"] for s in steps if s["action"] in ("create", "recreate", "start"))
        checks = []
        for ct in self.plan["containers"]:
            if ct["name"] not in touched or not (ct["kind"] == "service" or ct.get("side") == "provider"):
                continue
            checks.append((ct["name"], None))
            if ct.get("side") == "provider" and ct.get("dataplane") == "socat" and ct.get("target"):
                for port in ct["published"]:
                    if port["protocol"] == "tcp":
                        checks.append((ct["name"], ["socat", "-u", "OPEN:/dev/null",
                                                    "TCP:%s:%d,connect-timeout=1" % (ct["target"], port["port"])]))
        deadline = time.time() + self.module.params["ready_timeout"]
        for name, argv in checks:
            while True:
                found = engine.inspect(ids.get(name) or name) or {}
                state = found.get("State") or {}
                ok = state.get("Running") and not state.get("Restarting")
                if ok and argv:
                    ok = engine.exec_status(found["Id"], name, argv) == 0
                if ok:
                    break
                if time.time() >= deadline:
                    raise EngineError("%s did not become ready within %d s (%s). Fix: see its logs (docker logs %s); "
                                      "raise ambassador_ready_timeout if it needs longer to start"
                                      % (name, self.module.params["ready_timeout"],
                                         "state %s" % (state.get("Status") or "missing") if not state.get("Running")
                                         else "no TCP connection to %s" % argv[-1][4:].split(",")[0], name))
                time.sleep(0.2)

    def _wait_adopted(self, engine, delivered):
        """A running ambassador given a new list (a balancing one's replicas, a provider-side one's allowed
        peers) must have taken it (its log says so) before the run goes on: a replica left out is removed only
        once no ambassador sends it anything new, and a peer taken out is refused when the run ends."""
        deadline = time.time() + self.module.params["ready_timeout"]
        for step in delivered:
            if self.states.get(step["name"]) != "running":
                continue
            for path, text in sorted(step["files"].items()):
                wanted = addresses_of(text)
                if wanted is None or path not in DELIVERED_LOGS:
                    continue
                # Its last lines, not those since the delivery: the engine's clock may differ from this
                # machine's. An ambassador logs a few lines per health interval at most.
                while adopted(engine.logs_tail(step["id"], 100) or "", path) != wanted:
                    if time.time() >= deadline:
                        raise EngineError("%s did not take its new list in %s (%s) within %d s. Fix: see its logs "
                                          "(docker logs %s); raise ambassador_ready_timeout if its health interval "
                                          "is longer" % (step["name"], path, ", ".join(wanted) or "empty",
                                                         self.module.params["ready_timeout"], step["name"]))
                    time.sleep(0.2)

    def _stop_timeout(self, kind):
        """Service containers stop gracefully, so the service can save its data; ambassadors hold none."""
        return self.module.params["stop_timeout"] if kind == "service" else None

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
            plan=dict(type="dict", required=True),
            tls_fingerprint=dict(type="str"),
            timeout=dict(type="int", default=60),
            stop_timeout=dict(type="int", default=10),
            phases=dict(type="list", elements="str", default=list(PHASES), choices=list(PHASES)),
            stop_first=dict(type="list", elements="str", default=[]),
            hold=dict(type="list", elements="str", default=[]),
            resume=dict(type="list", elements="str", default=[]),
            lock=dict(type="dict"),
            ready_timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    require_sdk(module, missing_required_lib("docker"), where="host %s" % module.params["plan"]["host"])
    Reconciler(module).run()


if __name__ == "__main__":
    main()
