# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of crosshost.ambassador.plan: read the inventory, call the pure planner."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid

from ansible_collections.crosshost.ambassador.plugins.module_utils._connection import VARIABLES as CONNECTION_VARIABLES
from ansible_collections.crosshost.ambassador.plugins.module_utils._gate import run_shape_problems
from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import plan_topology
from ansible_collections.crosshost.ambassador.plugins.module_utils._topology import TopologyError
from ansible_collections.crosshost.ambassador.plugins.plugin_utils._action import ControllerAction

# Inventory variable -> key of the planner's per-host settings.
HOST_VARIABLES = (
    ("ambassador_consumes", "consumes"),
    ("ambassador_advertise_address", "advertise_address"),
    ("ambassador_bind_address", "bind_address"),
    ("ambassador_source_address", "source_address"),
    ("ambassador_network", "network"),
    ("ambassador_image", "image"),
    ("ambassador_kernel_image", "kernel_image"),
    ("ambassador_tls_dir", "tls_dir"),
)


# Variables a job runner (AWX, Automation Platform) sets that say which job this run is.
JOB_VARIABLES = ("awx_job_id", "tower_job_id", "awx_job_template_name", "tower_job_template_name",
                 "awx_workflow_job_id", "tower_workflow_job_id", "awx_workflow_job_name", "tower_workflow_job_name",
                 "awx_job_slice_number", "tower_job_slice_number", "awx_job_slice_count", "tower_job_slice_count")


def _run_identity(task_vars):
    """This run, for the locks it takes: a unique id and a sentence saying who runs what."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name for this uid (containers)
        user = "uid %d" % os.getuid()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    holder = "%s@%s pid %d, started %s" % (user, socket.gethostname(), os.getppid(), started)
    job = task_vars.get("awx_job_id") or task_vars.get("tower_job_id")
    if job:
        holder += ", AWX job %s" % job
        template = task_vars.get("awx_job_template_name") or task_vars.get("tower_job_template_name")
        if template:
            holder += " (%s)" % template
    return {"id": uuid.uuid4().hex, "holder": holder, "controller": socket.gethostname(), "pid": os.getppid()}


def _strategy(task):
    """The strategy of the play a task belongs to."""
    parent = task
    while parent is not None:
        play = getattr(parent, "_play", None)
        if play is not None:
            return play.strategy
        parent = getattr(parent, "_parent", None)
    return None


def host_settings(hv):
    """One host's settings for the planner (``_topology.validate``), from its variables ``hv``. Each
    is read once: a read templates it."""
    values = ((key, hv.get(var)) for var, key in HOST_VARIABLES)
    entry = dict((key, value) for key, value in values if value is not None)
    connection = ((key, hv.get(var)) for var, key in CONNECTION_VARIABLES)
    entry["docker"] = dict((key, value) for key, value in connection if value is not None)
    # The module runs on this machine: the TLS files it will read must be here.
    entry["local"] = hv.get("ansible_connection") == "local"
    if not entry.get("advertise_address"):
        # ansible_host, else the gathered default IPv4 address, else None.
        facts = hv.get("ansible_facts") or {}
        entry["advertise_address"] = hv.get("ansible_host") or (facts.get("default_ipv4") or {}).get("address")
    return entry


class ActionModule(ControllerAction):
    _VALID_ARGS = frozenset(("services", "hosts", "tls", "placement", "dataplane", "as_json", "apply"))

    def act(self, args, task_vars, result):
        hostvars = task_vars["hostvars"]
        groups = dict((name, list(members)) for name, members in task_vars["groups"].items())

        services = args["services"] if "services" in args else task_vars.get("ambassador_services")
        tls = args["tls"] if "tls" in args else task_vars.get("ambassador_tls", False)
        dataplane = args["dataplane"] if "dataplane" in args else task_vars.get("ambassador_dataplane")
        hosts = args.get("hosts") or groups.get("all", [])
        placement = args["placement"] if "placement" in args else task_vars.get("ambassador_placement_overrides")
        # Rendered here: Jinja left in them (e.g. image: "{{ lab_redis_image }}") would otherwise
        # reach the plans, and stay unrendered inside the JSON strings of as_json.
        services, dataplane, tls, placement = self._templar.template([services, dataplane, tls, placement])
        settings = {}
        for host in hosts:
            if host not in hostvars:
                result.update(failed=True, msg="plan: hosts: %s is not an inventory host. Fix: list inventory hosts only." % host)
                return result
            settings[host] = host_settings(hostvars[host])

        if args.get("apply"):
            # The plan is for applying it to the play's hosts as a whole: refuse plays that cannot,
            # first (a slice sees too few hosts to plan at all).
            problems = run_shape_problems(task_vars.get("ansible_play_batch"), task_vars.get("ansible_play_hosts"),
                                          _strategy(self._task),
                                          dict((k, task_vars[k]) for k in JOB_VARIABLES if k in task_vars))
            if problems:
                return self.refuse(result, problems)
        summary = {}
        try:
            plans = plan_topology(services, settings, groups=groups, known_hosts=groups.get("all", hosts), tls=tls,
                                  placement=placement, dataplane=dataplane, summary=summary,
                                  file_exists=os.path.isfile)
        except TopologyError as exc:
            result.update(failed=True, msg=str(exc), problems=[str(p) for p in exc.problems])
            return result

        if args.get("as_json"):
            # One string per host: why, and what it saves, in the README's "Performance".
            result["plans_json"] = dict((host, json.dumps(plan, separators=(",", ":"))) for host, plan in plans.items())
            # What every host gets as a fact (the role's ambassador_environment): flat, so still cheap.
            result["environments"] = dict((host, plan["environment"]) for host, plan in plans.items())
        else:
            result["plans"] = plans
        # The names a TLS host's certificate must carry, for the tls step.
        tls_hosts = dict((host, [plan["advertise_address"]] if plan["advertise_address"] else [])
                         for host, plan in plans.items() if plan["tls_dir"])
        result.update(
            changed=False,
            run=_run_identity(task_vars),
            topology=summary,
            tls=bool(tls_hosts),
            tls_hosts=tls_hosts,
            summary={
                "hosts": len(plans),
                "services": len(services),
                "ambassadors": sum(1 for p in plans.values() for c in p["containers"] if c["kind"] == "ambassador"),
            },
        )
        return result
