#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lock
short_description: Take or release a run's lock on one Docker host's engine
version_added: 0.2.0
description:
  - One run at a time per topology. The M(crosshost.ambassador.topology) role takes the lock of every
    engine of its play before it changes anything, and releases them after its last step; two runs
    that overlap (two AWX launches, a person and a schedule) never both change the same hosts.
  - The lock is a container named C(crosshost-ambassador-lock) on the engine, which the engine creates
    for one run only. It is labelled with the run's id and who runs it (user, controller, process, AWX
    job), runs no network and ends by itself after O(lease) seconds unless its run renews it
    (M(crosshost.ambassador.apply) renews it at every step and while it works), and the engine then
    removes it. So it works across any number of controllers, and a run that died stops blocking others
    within one lease.
  - A run that finds the lock held waits up to O(wait) seconds, then fails naming the run that holds it.
extends_documentation_fragment:
  - crosshost.ambassador.common.engine
attributes:
  check_mode:
    support: full
    description: Takes and releases nothing.
  diff_mode:
    support: none
    description: Locks are not part of any host's state to show.
  idempotent:
    support: full
    description: Taking a lock the run holds renews it; releasing one it does not hold does nothing.
options:
  plan:
    description:
      - The host's plan from M(crosshost.ambassador.plan), or its JSON text (as in RV(crosshost.ambassador.plan#module:plans_json));
        its connection (C(docker_host), C(docker)) and C(image) are used.
    type: dict
    required: true
  run:
    description: The run, as M(crosshost.ambassador.plan) returns it in C(run) (C(id) and C(holder)).
    type: dict
    required: true
  state:
    description: V(present) takes (or renews) the lock, V(absent) releases it if the run holds it.
    type: str
    choices: [present, absent]
    default: present
  wait:
    description: Seconds to wait while another run holds the lock.
    type: int
    default: 600
  lease:
    description:
      - Seconds the lock lives without being renewed. Every step of the run renews it; a run that died
        blocks others at most this long.
    type: int
    default: 300
  timeout:
    description: Seconds to wait for each Docker API call.
    type: int
    default: 60
seealso:
  - module: crosshost.ambassador.apply
"""

EXAMPLES = r"""
- name: Take this run's lock on the host's engine
  crosshost.ambassador.lock:
    plan: "{{ ambassador_plan }}"
    run: "{{ topology.run }}"
"""

RETURN = r"""
acquired:
  description: Whether the run holds the lock now (V(present)) or let go of it (V(absent)).
  returned: always
  type: bool
  sample: true
waited:
  description: Seconds spent waiting for another run.
  returned: always
  type: float
  sample: 12.4
waited_for:
  description: The run that held the lock while this one waited, or null.
  returned: always
  type: str
  sample: "alice@ctl1 pid 4242, started 2026-12-04T19:02:11Z (lease 300 s)"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.crosshost.ambassador.plugins.module_utils._engine import (
    EngineError, connect, require_sdk)
from ansible_collections.crosshost.ambassador.plugins.module_utils._lock import LockError, acquire, release


def main():
    module = AnsibleModule(
        argument_spec=dict(
            plan=dict(type="dict", required=True),
            run=dict(type="dict", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            wait=dict(type="int", default=600),
            lease=dict(type="int", default=300),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    require_sdk(module, missing_required_lib("docker"))
    params, plan = module.params, module.params["plan"]
    where = "host %s (Docker engine at %s)" % (plan.get("host"), (plan.get("docker") or {}).get("host") or "the default")
    result = {"changed": False, "acquired": False, "waited": 0.0, "waited_for": None}
    if module.check_mode:
        module.exit_json(**result)
    try:
        engine = connect(plan.get("docker"), timeout=params["timeout"])
        if params["state"] == "absent":
            result["acquired"] = release(engine, params["run"]["id"])
        else:
            if not engine.has_image(plan["image"]):
                engine.pull(plan["image"])
            _id, waited, waited_for = acquire(engine, params["run"], plan["image"], params["lease"], params["wait"])
            result.update(acquired=True, waited=round(waited, 1), waited_for=waited_for)
    except (EngineError, LockError) as exc:
        module.fail_json(msg="%s: %s" % (where, exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
