#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done on the controller by the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gate
short_description: Decide, between apply steps, what a run may change across hosts
version_added: 0.2.0
description:
  - Runs on the controller, once (C(run_once)), between the steps of the M(crosshost.ambassador.topology)
    role, and reads what M(crosshost.ambassador.apply) reported for every host of the play.
  - With O(check=changes), after the deciding step, whether the run has anything to change (when not,
    no lock is taken and nothing more runs), on which hosts (RV(hosts)), and whether a stop-first move is among it. A run limited to
    some hosts (C(--limit), C(ambassador_hosts)) that would change a service without every host that
    provides or consumes it fails here, before any change, naming the hosts to add, unless O(allow_partial).
  - With O(check=hold), after a step, the services whose move is called off because a host that the move
    depends on failed (the host that was to run the service, or the one that was to stop it first). The
    later steps leave their consumers and their old place as they are; a warning names them.
extends_documentation_fragment:
  - crosshost.ambassador.common.controller
attributes:
  idempotent:
    support: full
    description: Reads results only.
options:
  check:
    description: Which question to answer.
    type: str
    choices: [changes, hold]
    default: changes
  decided:
    description: The host variable holding each host's deciding M(crosshost.ambassador.apply) result.
    type: str
    default: _ambassador_decided
  topology:
    description: The C(topology) that M(crosshost.ambassador.plan) returned (C(service_hosts)), for O(check=changes).
    type: dict
  allow_partial:
    description: Let a limited run change a service without all of its hosts (C(ambassador_allow_partial)).
    type: bool
    default: false
seealso:
  - module: crosshost.ambassador.plan
"""

EXAMPLES = r"""
- name: Decide which moves go on
  crosshost.ambassador.gate:
    check: hold
  run_once: true
  register: hold
"""

RETURN = r"""
changes:
  description: Whether any host of the play has something to change (O(check=changes)).
  returned: success, with O(check=changes)
  type: bool
stop:
  description: Whether a stop-first move is among the changes (O(check=changes)).
  returned: success, with O(check=changes)
  type: bool
hosts:
  description:
    - The hosts the run locks and applies (O(check=changes)), sorted; empty when nothing changes.
    - Every host with something to change, and every host that provides or consumes a service that changes
      (the change relies on their state). The other hosts of the play are left alone.
  returned: success, with O(check=changes)
  type: list
  elements: str
  sample: [host1, host2]
hold:
  description: The services whose move is called off so far.
  returned: success
  type: list
  elements: str
  sample: [redis]
held_by:
  description: Each held service with the failed hosts that hold it.
  returned: success
  type: dict
  sample: {redis: [host3]}
failed_hosts:
  description: The hosts of the play that failed so far.
  returned: always
  type: list
  elements: str
problems:
  description: Why a limited run is refused.
  returned: failure
  type: list
  elements: str
"""
