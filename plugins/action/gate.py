# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of crosshost.ambassador.gate: read every host's step results, call the pure gate."""

from __future__ import annotations

import json

from ansible_collections.crosshost.ambassador.plugins.module_utils._gate import (
    held_services, hosts_to_change, partial_run_problems)
from ansible_collections.crosshost.ambassador.plugins.plugin_utils._action import ControllerAction


def _result(hostvars, host, name):
    value = hostvars[host].get(name) if host in hostvars else None
    return value if isinstance(value, dict) else {}


def _plan(hostvars, host):
    """A host's plan, from the plan step's result registered on it (JSON text: the role plans with as_json)."""
    text = (_result(hostvars, host, "_ambassador_topology").get("plans_json") or {}).get(host)
    return json.loads(text) if text else {}


class ActionModule(ControllerAction):
    _VALID_ARGS = frozenset(("check", "decided", "topology", "allow_partial"))

    def act(self, args, task_vars, result):
        hostvars = task_vars["hostvars"]
        play_hosts_all = list(task_vars.get("ansible_play_hosts_all") or [])
        alive = set(task_vars.get("ansible_play_hosts") or [])
        failed = [h for h in play_hosts_all if h not in alive]
        decided_var = args.get("decided", "_ambassador_decided")
        decided = dict((h, _result(hostvars, h, decided_var)) for h in play_hosts_all)
        pending = dict((h, sorted(set(s for services in (d.get("pending_services") or {}).values() for s in services)))
                       for h, d in decided.items())
        result.update(changed=False, failed_hosts=failed)

        # Moves called off so far: the host that was to run the service, or to stop it first, failed.
        plans = dict((h, _plan(hostvars, h)) for h in failed)
        held = held_services(failed, dict((h, p.get("provides") or []) for h, p in plans.items()),
                             dict((h, (decided[h].get("pending_services") or {}).get("stop") or []) for h in failed))
        result.update(hold=sorted(held), held_by=held)
        if held:
            result["warnings"] = [
                "crosshost.ambassador: called off the move of %s, because %s failed (see above): no consumer switches "
                "to a place that is not up, and the old place keeps serving. Fix that host and run again"
                % (", ".join(sorted(held)), ", ".join(sorted(set(h for hs in held.values() for h in hs))))]

        if args.get("check", "changes") == "changes":
            topology = args.get("topology") or {}
            problems = [] if self._bool(args.get("allow_partial")) else partial_run_problems(
                topology.get("service_hosts") or {}, pending, play_hosts_all)
            if problems:
                return self.refuse(result, problems)
            result.update(changes=any(pending.values()),
                          stop=any((d.get("pending") or {}).get("stop") for d in decided.values()),
                          hosts=hosts_to_change(topology.get("service_hosts") or {}, pending, alive,
                                                [h for h, d in decided.items() if any((d.get("pending") or {}).values())]))
        return result

    @staticmethod
    def _bool(value):
        return str(value).lower() in ("true", "yes", "1", "on")
