# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The topology_dot filter: a thin shell around the pure renderer in module_utils/_render.py."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: topology_dot
short_description: Draw the ambassador topology (and what the next run changes) as Graphviz DOT text
version_added: 0.1.0
description:
  - Turns the C(plans) that M(crosshost.ambassador.plan) returns into a Graphviz C(digraph), one box per Docker
    host with its consumer containers, service containers and ambassadors, one node per published endpoint
    (C(advertise_address:port)), and arrows along the path a connection takes.
  - With O(actions), the containers that the next run creates, recreates or removes (for example what
    M(crosshost.ambassador.apply) reports in check mode before a move) are coloured; removed ones are drawn dashed.
  - Render the text with C(dot -Tsvg) (Debian package C(graphviz)); C(playbooks/graph.yml) does it all.
author:
  - crosshost.ambassador maintainers (@crosshost)
options:
  _input:
    description: Inventory hostname to that host's plan, as in the C(plans) result of M(crosshost.ambassador.plan).
    type: dict
    required: true
  actions:
    description: Inventory hostname to the list of actions (each with C(action) and C(name)) of M(crosshost.ambassador.apply).
    type: dict
  title:
    description: Caption of the picture.
    type: str
seealso:
  - module: crosshost.ambassador.plan
  - module: crosshost.ambassador.apply
"""

EXAMPLES = r"""
- name: Plan once
  crosshost.ambassador.plan:
  run_once: true
  register: topology

- name: Write the topology as DOT text
  ansible.builtin.copy:
    content: "{{ topology.plans | crosshost.ambassador.topology_dot(title='production') }}"
    dest: /tmp/topology.dot
    mode: "0644"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
_value:
  description: The DOT text of the picture (render it with C(dot -Tsvg topology.dot -o topology.svg)).
  type: str
  sample: "digraph topology { ... }"
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.crosshost.ambassador.plugins.module_utils._render import render_dot


def topology_dot(plans, actions=None, title=None):
    if not isinstance(plans, dict):
        raise AnsibleFilterError("topology_dot: the input must be the plans mapping (hostname -> plan), got %s"
                                 % type(plans).__name__)
    try:
        return render_dot(plans, actions=actions, title=title)
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("topology_dot: the input is not a crosshost.ambassador.plan result (%s)" % exc)


class FilterModule(object):
    def filters(self):
        return {"topology_dot": topology_dot}
