# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""What a run may do across hosts: plain functions, no Ansible, no Docker.

The topology role asks these questions on the controller, between its apply steps:

* before anything changes, :func:`run_shape_problems` (serial batches, the free strategy, AWX
  job slices) and :func:`partial_run_problems` (a ``--limit`` that leaves out hosts of a service
  the run changes), then :func:`hosts_to_change`: the hosts the run locks and changes;
* after the make step, :func:`held_services`: the moves to call off because a host they depend
  on failed, so that no consumer switches to a place that is not up and no old place lets go.
"""

from __future__ import annotations

# Strategies that let hosts run ahead of each other: make, switch and break would no longer be
# steps across hosts.
UNORDERED_STRATEGIES = ("free", "host_pinned")


def run_shape_problems(play_batch, play_hosts_all, strategy, extra_vars):
    """Sentences saying why this run cannot apply a topology as a whole, or an empty list.

    :param play_batch: the hosts of the current batch (``ansible_play_batch``).
    :param play_hosts_all: the active hosts of the whole play (``ansible_play_hosts``, which serial does not
        limit).
    :param strategy: the play's strategy.
    :param extra_vars: the variables a job runner may set (AWX's ``awx_*``/``tower_*``).
    """
    problems = []
    if len(set(play_batch or ())) < len(set(play_hosts_all or ())):
        problems.append(
            "the play runs in batches (serial: this batch has %d of its %d hosts), so a move would be made, "
            "switched and let go of batch by batch, leaving consumers of other batches pointing at a place that "
            "is gone. Fix: remove serial from the play that applies the topology role"
            % (len(set(play_batch)), len(set(play_hosts_all))))
    if strategy in UNORDERED_STRATEGIES:
        problems.append(
            "the play uses strategy %s, which lets hosts run ahead of each other, so consumers could switch to "
            "a place that is not up yet. Fix: use the linear strategy (the default) for the play that applies "
            "the topology role" % strategy)
    slice_ = _job_slice(extra_vars)
    if slice_:
        problems.append(
            "this job is %s: a slice sees only its share of the inventory, so it would plan the topology without "
            "the other slices' hosts (their consumers locked out of providers' allow-lists, moves half made). "
            "Fix: launch the job template without slicing (job_slice_count 1); for large fleets use forks and "
            "instance groups instead (README: Large fleets)" % slice_)
    return problems


def _job_slice(extra_vars):
    """A description of the AWX job slice this run is, or None.

    AWX (checked in its source: models/jobs.py, models/unified_jobs.py) passes no slice number
    to the playbook: a sliced job template runs as a workflow job named after the template, one
    job per slice, each with its share of the inventory. Variables naming the slice are honoured
    too, should a runner set them.
    """
    extra_vars = extra_vars or {}
    for prefix in ("awx", "tower"):
        count = extra_vars.get("%s_job_slice_count" % prefix)
        if count is not None and str(count).isdigit() and int(count) > 1:
            return "slice %s of %s" % (extra_vars.get("%s_job_slice_number" % prefix, "?"), count)
    for prefix in ("awx", "tower"):
        workflow = extra_vars.get("%s_workflow_job_name" % prefix)
        template = extra_vars.get("%s_job_template_name" % prefix)
        if workflow and template and workflow == template and extra_vars.get("%s_workflow_job_id" % prefix):
            return ("a slice of job template %r (AWX runs a sliced job as a workflow job of the same name, "
                    "workflow job %s)" % (template, extra_vars.get("%s_workflow_job_id" % prefix)))
    return None


def partial_run_problems(service_hosts, pending, play_hosts):
    """Sentences naming, for each service this run changes, the hosts of that service the run leaves out.

    :param service_hosts: service -> the hosts that provide or consume it (the whole inventory's plan).
    :param pending: host of the play -> services with work on that host in this run.
    :param play_hosts: the hosts of the play.
    """
    play_hosts = set(play_hosts)
    missing = {}
    for host in sorted(pending):
        for service in pending[host] or ():
            out = [h for h in service_hosts.get(service, ()) if h not in play_hosts]
            if out:
                missing.setdefault(service, set()).update(out)
    problems = []
    for service in sorted(missing):
        hosts = sorted(missing[service])
        problems.append(
            "this run changes service %s but leaves out %s, which %s it: %s would be left pointing at a place "
            "that changes without them. Fix: add %s to the limit (--limit or ambassador_hosts), or set "
            "ambassador_allow_partial=true if that is what you want"
            % (service, ", ".join(hosts), "use or run" if len(hosts) > 1 else "uses or runs",
               "they" if len(hosts) > 1 else "it", ",".join(hosts)))
    return problems


def hosts_to_change(service_hosts, pending, play_hosts, busy=()):
    """The hosts of the play that a run with these changes locks and applies, sorted.

    Every host with something to change, and every host that provides or consumes a service that
    changes: the change relies on their state (a consumer switches to the host that is to run the
    service; the old host lets go only once the new one runs it), so they are locked and decided
    again under the lock, in case another run changed them since. Any other host is left alone: this
    run changes nothing there, and its changes rely on nothing there.

    :param service_hosts: service -> the hosts that provide or consume it (the whole inventory's plan).
    :param pending: host of the play -> services with work on that host in this run.
    :param play_hosts: the hosts of the play that may be applied (those that have not failed).
    :param busy: hosts with some other step to take (a missing network): applied too when the run changes
        something, so that every host of a run has the network, as before a run applied only these hosts.
    """
    play_hosts = set(play_hosts)
    changing = set(s for services in pending.values() for s in services or ())
    hosts = set(h for h, services in pending.items() if services) | set(busy)
    for service in changing:
        hosts.update(service_hosts.get(service, ()))
    return sorted(hosts & play_hosts)


def held_services(failed_hosts, provides, stopping):
    """The services whose move is called off, with the failed host that calls each off.

    A service is held when the host that is to run it failed (it cannot take it), or when the
    host that is to stop it first failed (it may still be running there: never two writers).

    :param failed_hosts: hosts of the play that failed so far.
    :param provides: host -> services placed on it by the plan.
    :param stopping: host -> services it has to stop first (a stop-first move away from it).
    :returns: service -> sorted hosts that failed.
    """
    held = {}
    for host in sorted(failed_hosts):
        for service in list(provides.get(host) or ()) + list(stopping.get(host) or ()):
            held.setdefault(service, set()).add(host)
    return dict((service, sorted(hosts)) for service, hosts in sorted(held.items()))
