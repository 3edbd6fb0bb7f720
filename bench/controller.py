"""The controller side at scale: inventory -> per-host plans inside ansible-playbook, no host contacted.

Writes an inventory of N hosts (synthetic topology of bench/planning.py, as inventory
variables) and playbooks over all of them, run side by side: the `plan` task alone
against Ansible's start-up (one `debug` task), and the topology role's planning tasks
(`plan` once, then every host's environment as a fact) against one trivial fact per host
(what a task on every host costs in Ansible), and against the role's earlier way (the same
fact set by a task on every host rather than by one delegate_facts loop).
"""

import os

import yaml

from planning import synthetic


def _play(name, *tasks):
    return [{"name": name, "hosts": "all", "gather_facts": False, "tasks": list(tasks)}]


PLAYBOOKS = {
    # Ansible's start-up and inventory parsing: one task, once.
    "startup": _play("startup", {"ansible.builtin.debug": {"msg": "{{ groups.all | length }}"}, "run_once": True}),
    # The plan action alone (once, for every host).
    "plan_task": _play("plan_task", {"crosshost.ambassador.plan": {"as_json": True}, "run_once": True,
                                     "register": "topology"}),
    # Ansible's cost of handing anything to every host: one trivial fact per host.
    "per_host_fact": _play("per_host_fact", {"ansible.builtin.set_fact": {"x": "{{ inventory_hostname }}"}}),
    # What site.yml does before it contacts any host: the topology role's planning tasks
    # (plan once, then each host's environment as a fact), imported statically as site.yml's roles:
    # does (include_role would add Ansible's per-host cost of a dynamic include, about 16 s here).
    "role_plan": _play("role_plan", {"ansible.builtin.import_role": {"name": "crosshost.ambassador.topology",
                                                                     "tasks_from": "plan"}}),
    # What the role did before 2026-12-06: the same plan task, then each host's environment handed out by a
    # set_fact task on every host (one worker per host), instead of one delegate_facts loop on the controller.
    "env_fact": _play("env_fact", {"crosshost.ambassador.plan": {"as_json": True, "apply": True}, "run_once": True,
                                   "register": "topology"},
                      {"ansible.builtin.set_fact": {"ambassador_environment":
                                                    "{{ topology.environments[inventory_hostname] }}"}}),
}


def write(directory, n_hosts, n_services):
    """The inventory and both playbooks under `directory`; returns (inventory, {name: playbook})."""
    services, hosts = synthetic(n_hosts, n_services)
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ambassador_services": services},
        "hosts": dict((h, {"ambassador_advertise_address": v["advertise_address"],
                           "ambassador_consumes": v["consumes"]}) for h, v in hosts.items()),
    }}
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "inventory.yml")
    with open(path, "w") as handle:
        yaml.safe_dump(inventory, handle, default_flow_style=None)
    playbooks = {}
    for name, play in PLAYBOOKS.items():
        playbooks[name] = os.path.join(directory, "%s.yml" % name)
        with open(playbooks[name], "w") as handle:
            yaml.safe_dump(play, handle, sort_keys=False)
    return path, playbooks
