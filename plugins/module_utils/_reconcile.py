# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""Decide what to do on one Docker host: plain functions, no Docker, no Ansible.

The engine side (``_engine``) reports what exists; :func:`decide` compares it
with the host's planned containers and returns the actions, each with its reason.
A container is recreated only when the hash of its spec changed; the spec itself
is stored in a label so that a diff can show exactly what changed. Its ``files``
are not part of the spec: new text is put in the container that stays (``deliver``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
import json

from ansible_collections.crosshost.ambassador.plugins.module_utils._container import (
    SPEC_KEYS, from_stored, spec as container_spec, stored)
from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import ALLOW_FILE, allow_change

LABEL_PREFIX = "crosshost.ambassador."
OWNER_LABEL = LABEL_PREFIX + "managed"
HASH_LABEL = LABEL_PREFIX + "spec-hash"
SPEC_LABEL = LABEL_PREFIX + "spec"
KIND_LABEL = LABEL_PREFIX + "role"  # a container's kind, under the name it is stored with (_container.stored)
SERVICE_LABEL = LABEL_PREFIX + "service"
SIDE_LABEL = LABEL_PREFIX + "side"

# Docker states in which an owned, up-to-date container is simply started again.
STARTABLE_STATES = ("created", "exited", "dead")


def _spec_text(spec):
    return json.dumps(stored(spec), sort_keys=True, separators=(",", ":"))


def spec_hash(spec):
    return hashlib.sha256(_spec_text(spec).encode("utf-8")).hexdigest()


def labels_for(spec):
    """The labels that mark a container as ours and record its spec."""
    labels = {
        OWNER_LABEL: "true",
        HASH_LABEL: spec_hash(spec),
        SPEC_LABEL: _spec_text(spec),
        KIND_LABEL: spec["kind"] or "",
        SERVICE_LABEL: spec["service"] or "",
    }
    if spec.get("side"):
        labels[SIDE_LABEL] = spec["side"]
    return labels


def stored_spec(labels):
    """The spec recorded on an owned container, or None if it is unreadable."""
    try:
        found = json.loads(labels.get(SPEC_LABEL) or "null")
    except ValueError:
        return None
    return from_stored(found) if isinstance(found, dict) else None


def spec_changes(before, after):
    """Which spec keys differ, as ``{key: {"before": .., "after": ..}}``."""
    if before is None:
        return {"spec": {"before": None, "after": "unknown: the container carries no readable spec label"}}
    return dict((key, {"before": before.get(key), "after": after.get(key)})
                for key in SPEC_KEYS if before.get(key) != after.get(key))


def changed_files(found, wanted):
    """The paths of ``wanted`` (path -> text, a planned container's ``files``) whose text is not what
    ``found`` (path -> the text in the container, None when the file is absent) holds, sorted."""
    found = found or {}
    return sorted(path for path, text in (wanted or {}).items() if found.get(path) != text)


def _overlaps(ip_a, ip_b):
    wildcard = ("", "0.0.0.0", "::")
    return ip_a == ip_b or ip_a in wildcard or ip_b in wildcard


def port_conflicts(specs, foreign):
    """Published ports the plan needs that containers it does not own already publish."""
    found = []
    for spec in specs:
        for want in spec["published"]:
            for other in foreign:
                for have in other.get("ports") or []:
                    if (have.get("PublicPort") == want["host_port"] and have.get("Type", "tcp") == want["protocol"]
                            and _overlaps(have.get("IP", ""), want["host_ip"])):
                        found.append("port %s:%d/%s, wanted by %s, is published by container %s"
                                     % (want["host_ip"], want["host_port"], want["protocol"], spec["name"],
                                        other["name"]))
    return sorted(set(found))


def decide(planned, existing, stop_first=(), tls_fingerprint=None, network=None, networks=(), images=None,
           side_by_side=True):
    """Compare planned containers with what exists on the engine.

    :param planned: the plan's containers (``_container.planned_container``).
    :param existing: one dict per container on the engine, with ``id``, ``name``,
        ``labels``, ``state`` and ``ports`` (the engine's summary of published ports), and ``files``
        (path -> text, None when absent) for the paths of the planned container's ``files``.
    :param stop_first: services moved stop-first: a running service container of one of them
        that this host no longer runs is stopped (phase ``stop``) before it is removed, so that
        the new host never starts it while the old one still writes.
    :param tls_fingerprint: the run's TLS files' fingerprint (see ``_container.spec``).
    :param network: the plan's shared network; a step creates it when it is not in ``networks``
        (the engine's networks of that name).
    :param images: the planned images the engine has; a step pulls each other one that a created
        or recreated container needs. None: no image steps.
    :param side_by_side: False when the engine cannot change a container's restart policy
        (:func:`updates_restart_policy`): every recreate is then ``stop_first``.
    :returns: a dict with

        * ``conflicts``: sentences naming each planned name taken by a container
          this collection does not own, and each published port the plan needs
          that such a container publishes (nothing may be done on the host then);
        * ``actions``: ordered steps ``{"action", "kind", "name", "reason", ...}``,
          with ``action`` one of stop, remove, recreate, create, deliver (put new ``files`` in a
          container that stays), start, and ``service``; create, recreate and deliver carry ``files``,
          a deliver of an allow-list (``_dataplane.ALLOW_FILE``) also ``allow``: its ``added`` and
          ``removed`` peers;
        * ``unchanged``: names of planned containers already as planned;
        * ``before`` / ``after``: name -> spec of owned containers now and after
          the actions, for a diff; ``files_before`` / ``files_after``: the same for the
          delivered files of the containers that have some;
        * ``steps``: everything to do on the host, each a copy of an action (or a network or
          image step) with its ``phase`` (:data:`PHASES`) and, for a recreate, its ``method``
          (see :func:`replace_method`); :func:`select` takes those of some phases.
    """
    by_name = dict((c["name"], c) for c in existing)
    owned = dict((c["name"], c) for c in existing if (c.get("labels") or {}).get(OWNER_LABEL) == "true")
    specs = [container_spec(p, tls_fingerprint) for p in planned]
    files = dict((p["name"], dict(p.get("files") or {})) for p in planned)
    wanted = set(s["name"] for s in specs)

    conflicts = sorted("container %s exists" % s["name"] for s in specs if s["name"] in by_name and s["name"] not in owned)
    foreign = [c for c in existing if c["name"] not in owned]
    conflicts += port_conflicts(specs, foreign)
    before = dict((name, stored_spec(c.get("labels") or {})) for name, c in sorted(owned.items()))
    after = dict((s["name"], s) for s in sorted(specs, key=lambda s: s["name"]))
    result = {"conflicts": conflicts, "actions": [], "unchanged": [], "before": before, "after": after, "steps": [],
              "files_before": dict((name, dict(owned[name].get("files") or {})) for name in sorted(owned)
                                   if files.get(name) or owned[name].get("files")),
              "files_after": dict((name, found) for name, found in sorted(files.items()) if found)}
    if conflicts:
        return result

    actions = result["actions"]
    stop_first = set(stop_first)
    for name in sorted(owned):
        if name not in wanted:
            labels = owned[name].get("labels") or {}
            kind, service = labels.get(KIND_LABEL), labels.get(SERVICE_LABEL)
            if kind == "service" and service in stop_first and owned[name].get("state") not in STARTABLE_STATES:
                actions.append({"action": "stop", "kind": "container", "name": name, "id": owned[name]["id"],
                                "container_kind": kind, "service": service,
                                "reason": "moves stop-first: stopped before its new host starts it"})
            actions.append({"action": "remove", "kind": "container", "name": name, "id": owned[name]["id"],
                            "container_kind": kind, "service": service,
                            "reason": "no longer in the plan for this host"})
    # Service containers first, so that ambassadors forward to something.
    for spec in sorted(specs, key=lambda s: (s["kind"] != "service", s["name"])):
        name = spec["name"]
        current = owned.get(name)
        if current is None:
            actions.append({"action": "create", "kind": "container", "name": name, "service": spec["service"],
                            "spec": spec, "files": files[name], "reason": "planned, not present"})
            continue
        labels = current.get("labels") or {}
        if labels.get(HASH_LABEL) != spec_hash(spec):
            changes = spec_changes(before[name], spec)
            actions.append({"action": "recreate", "kind": "container", "name": name, "id": current["id"],
                            "service": spec["service"], "spec": spec, "files": files[name],
                            "reason": "changed: %s" % ", ".join(sorted(changes)) if changes else "spec hash differs",
                            "changes": changes})
            continue
        stale = changed_files(current.get("files"), files[name])
        if stale:
            deliver = {"action": "deliver", "kind": "container", "name": name, "id": current["id"],
                       "service": spec["service"], "files": dict((path, files[name][path]) for path in stale),
                       "reason": "file(s) %s changed; put in place, the container stays" % ", ".join(stale)}
            if ALLOW_FILE in stale:
                added, removed = allow_change((current.get("files") or {}).get(ALLOW_FILE), files[name][ALLOW_FILE])
                deliver["allow"] = {"added": added, "removed": removed}
            actions.append(deliver)
        if current.get("state") in STARTABLE_STATES:
            actions.append({"action": "start", "kind": "container", "name": name, "id": current["id"],
                            "service": spec["service"], "reason": "up to date but %s" % current.get("state")})
        elif not stale:
            result["unchanged"].append(name)
    result["steps"] = _steps(actions, before, network, networks, images, side_by_side)
    return result


def _steps(actions, before, network, networks, images, side_by_side=True):
    """The actions with their phase and method, after the network and image steps they need."""
    needed = _needed_ports(actions)
    steps = []
    if network is not None and network not in networks:
        steps.append({"action": "create", "kind": "network", "name": network, "phase": "make",
                      "reason": "network %s does not exist" % network})
    pulled = set()
    for action in actions:
        phase = phase_of(action, before, needed)
        image = action["spec"]["image"] if "spec" in action else None
        if images is not None and image is not None and image not in images and (image, phase) not in pulled:
            pulled.add((image, phase))
            steps.append({"action": "pull", "kind": "image", "name": image, "phase": phase,
                          "reason": "image %s is not on the engine" % image})
        step = dict(action, phase=phase)
        if action["action"] == "recreate":
            step["method"] = replace_method(action["spec"], before.get(action["name"]), side_by_side)
        steps.append(step)
    return steps


def select(steps, phases, hold=()):
    """``(steps to take, steps held)`` of ``phases``, in phase order: the network and image steps
    first (an image only when a step taken needs it, once), then the container steps. The
    container steps of services in ``hold`` wait (their new place failed to come up, so nothing
    may switch to it or let go of the old place)."""
    chosen = [s for p in PHASES if p in phases for s in steps if s["phase"] == p]
    taken, held = held_back([s for s in chosen if s["kind"] == "container"], hold)
    needed = set(s["spec"]["image"] for s in taken if "spec" in s)
    first, seen = [], set()
    for step in chosen:
        if step["kind"] == "network" or (step["kind"] == "image" and step["name"] in needed - seen):
            seen.add(step["name"])
            first.append(step)
    return first + taken, held


def pending(steps, phases):
    """For each phase not in ``phases``: how many steps it has (a missing network or image counts too),
    and for which services (those of its container steps)."""
    left = [p for p in PHASES if p not in phases]
    of = dict((p, [s for s in steps if s["phase"] == p]) for p in left)
    return (dict((p, len(of[p])) for p in left),
            dict((p, services_of([s for s in of[p] if s["kind"] == "container"])) for p in left))


# Phases of a change, each run on every host before the next (make before break): what each
# does is explained once, in the apply module's documentation of its option phases; how the
# topology role runs them, in the README's "Moves".
PHASES = ("stop", "make", "switch", "break")


def _published_keys(spec):
    return set((p.get("host_ip"), p.get("host_port"), p.get("protocol")) for p in (spec or {}).get("published") or [])


def _side(spec):
    return (spec or {}).get("side")


def recreate_phase(spec, before):
    """The phase of a recreated container: an ambassador that becomes provider-side goes with
    ``make`` (consumers elsewhere are about to switch to it), one that stops being provider-side
    goes with ``break`` (consumers elsewhere use it until they have switched), any other with
    ``switch``."""
    if spec["kind"] == "ambassador":
        if _side(spec) == "provider" and _side(before) != "provider":
            return "make"
        if _side(before) == "provider" and _side(spec) != "provider":
            return "break"
    return "switch"


def _needed_ports(actions):
    """The published ports that created or recreated containers need."""
    needed = set()
    for action in actions:
        if "spec" in action:
            needed |= _published_keys(action["spec"])
    return needed


def phase_of(action, before, needed):
    """The phase of one action of the decision. A removal goes with ``make`` instead of ``break``
    when it frees a published port in ``needed`` (see :func:`_needed_ports`). ``before`` is the
    decision's name -> spec of the owned containers as they are."""
    if action["action"] == "stop":
        return "stop"
    if action["action"] == "remove":
        return "make" if _published_keys(before.get(action["name"])) & needed else "break"
    if action["action"] == "recreate":
        return recreate_phase(action["spec"], before.get(action["name"]))
    if action["action"] == "deliver":
        if "allow" in action:
            # A provider-side ambassador's allowed peers: new peers are let in with ``make``, before their
            # hosts switch to it; when peers only go, they are taken out with ``break``, once their hosts
            # have switched away (a host that became a replica itself forwards to its own from then on).
            return "make" if action["allow"]["added"] else "break"
        # New files for a running container (a balancing ambassador's replicas): with the switch, like a
        # consumer-side ambassador made anew, once the new replicas' hosts have made theirs.
        return "switch"
    if action["action"] == "create" and _side(action["spec"]) == "consumer":
        # A consumer-side ambassador forwards to another host: it comes with the switch, once that
        # host's make step succeeded (a failed one holds it back), so that no consumer is given an
        # ambassador to a provider host whose make step failed.
        return "switch"
    return "make"


def split_phases(actions, before):
    """The decision's actions by phase (:data:`PHASES`), each in its original order (see :func:`phase_of`)."""
    needed = _needed_ports(actions)
    phases = dict((phase, []) for phase in PHASES)
    for action in actions:
        phases[phase_of(action, before, needed)].append(action)
    return phases


def replace_side_by_side(spec, before):
    """Whether a recreated container may run beside its old self for a moment (new one first,
    then the old one removed): ambassadors whose old and new selves publish no port in common
    (consumer-side ones, and an ambassador that turns from one side into the other)."""
    return spec["kind"] == "ambassador" and not (_published_keys(spec) & _published_keys(before))


def replace_method(spec, before, side_by_side=True):
    """How a recreated container is replaced (``Engine.replace``): ``side_by_side`` (see
    :func:`replace_side_by_side`) when the engine allows it, else ``stop_first`` (the old one is
    removed, then the new one made)."""
    return "side_by_side" if side_by_side and replace_side_by_side(spec, before) else "stop_first"


def updates_restart_policy(version):
    """Whether the engine whose ``GET /version`` answer is ``version`` can change a container's restart
    policy (``POST /containers/{id}/update``), which a side-by-side replacement needs. Docker can;
    Podman's compatible API before 5.0 has no such endpoint (4.3 answers 404)."""
    for component in (version or {}).get("Components") or []:
        if component.get("Name") == "Podman Engine":
            major = str(component.get("Version") or "0").split(".", maxsplit=1)[0]
            return major.isdigit() and int(major) >= 5
    return True


def summarise(actions):
    """Counts per action, e.g. ``{"create": 1, "remove": 2}``."""
    return dict(Counter(action["action"] for action in actions))


def held_back(actions, hold):
    """``(actions to take, actions held)``: the actions of the services in ``hold`` wait (their
    new place failed to come up, so nothing may switch to it or let go of the old place)."""
    hold = set(hold or ())
    return ([a for a in actions if a.get("service") not in hold],
            [a for a in actions if a.get("service") in hold])


def resume_actions(existing, services):
    """Start again the service containers of ``services`` that a stop-first move stopped on this
    host, when the move is called off (the new host failed): the old place keeps serving."""
    actions = []
    for c in sorted(existing, key=lambda c: c["name"]):
        labels = c.get("labels") or {}
        if (labels.get(OWNER_LABEL) == "true" and labels.get(KIND_LABEL) == "service"
                and labels.get(SERVICE_LABEL) in set(services or ()) and c.get("state") in STARTABLE_STATES):
            actions.append({"action": "start", "kind": "container", "name": c["name"], "id": c["id"],
                            "service": labels.get(SERVICE_LABEL), "container_kind": "service",
                            "reason": "its move was called off: the old place serves again"})
    return actions


def named_volumes(spec):
    """The named volumes (not host paths) a container spec mounts: what stays behind on a host
    when the container is removed."""
    found = []
    for volume in (spec or {}).get("volumes") or []:
        source = volume.split(":", 1)[0]
        if source and not source.startswith("/") and not source.startswith("."):
            found.append(source)
    return found


def services_of(actions):
    """The services that ``actions`` touch, sorted."""
    return sorted(set(a["service"] for a in actions if a.get("service")))
