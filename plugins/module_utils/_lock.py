# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""One run at a time per topology: a lock held on each Docker engine, with a lease.

A run that changes anything first takes the lock of every engine in its play, and keeps
it until its last step. The lock is a container the engine names atomically
(:data:`LOCK_NAME`): creating it succeeds for one run only. It carries the run's id and a
sentence saying who runs it (user, controller, process, AWX job), and it runs a small shell
loop that ends after ``lease`` seconds unless the holder renews it (SIGHUP); the engine then
removes it (auto-remove). So a lock lives on the engines themselves (it works with any
number of controllers, which AWX execution nodes are), and a holder that died (killed, its
controller lost) stops blocking others within one lease.

Nothing here imports Docker: ``engine`` is a :class:`._engine.Engine` or anything with
its ``inspect``, ``create_lock``, ``signal`` and ``remove`` methods (the unit tests use a fake).
"""

from __future__ import annotations

import time

LOCK_NAME = "crosshost-ambassador-lock"
RUN_LABEL = "crosshost.ambassador.lock.run"
HOLDER_LABEL = "crosshost.ambassador.lock.holder"
LEASE_LABEL = "crosshost.ambassador.lock.lease"

# Seconds between two looks at a lock held by another run.
POLL_EVERY = 1.0
# A lock container created but never started (its run died in between) is stale after this long.
STARTING_GRACE = 5.0


class LockError(Exception):
    """The lock could not be taken or is no longer held; the message says why and what to do."""


def lock_command(lease):
    """The lock's process: counts seconds up to ``lease``; SIGHUP (a renewal) starts it over."""
    return "trap 'n=0' HUP; n=0; while [ $n -lt %d ]; do sleep 1; n=$((n+1)); done" % int(lease)


def lock_labels(run, lease):
    return {RUN_LABEL: run["id"], HOLDER_LABEL: run.get("holder") or run["id"], LEASE_LABEL: str(int(lease))}


def judge(found, run_id):
    """What a lock container found on the engine means for run ``run_id``.

    :param found: the engine's inspection of :data:`LOCK_NAME`, or None.
    :returns: ``free`` (none), ``ours``, ``held`` (another run's, alive) or ``ended`` (another
        run's whose process ended: the engine is removing it, or it never started).
    """
    if found is None:
        return "free"
    labels = (found.get("Config") or {}).get("Labels") or {}
    state = found.get("State") or {}
    if labels.get(RUN_LABEL) == run_id:
        return "ours" if state.get("Running") else "ended"
    if state.get("Running") or state.get("Restarting") or state.get("Status") == "created":
        return "held"
    return "ended"


def holder_of(found):
    labels = (found.get("Config") or {}).get("Labels") or {}
    return "%s (lease %s s)" % (labels.get(HOLDER_LABEL) or "an unnamed run", labels.get(LEASE_LABEL) or "?")


def acquire(engine, run, image, lease, wait, clock=time.monotonic, sleep=time.sleep):
    """Take the engine's lock for ``run`` (``{"id", "holder"}``), waiting up to ``wait`` seconds
    while another run holds it.

    :returns: ``(lock container id, seconds waited, the holder waited for or None)``.
    :raises LockError: still held by another run after ``wait`` seconds.
    """
    start = clock()
    waited_for = None
    starting = {}
    while True:
        lock_id = engine.create_lock(LOCK_NAME, image, lock_command(lease), lock_labels(run, lease))
        if lock_id is not None:
            return lock_id, clock() - start, waited_for
        found = engine.inspect(LOCK_NAME)
        verdict = judge(found, run["id"])
        if verdict == "ours":
            engine.signal(found["Id"], LOCK_NAME, "SIGHUP")
            return found["Id"], clock() - start, waited_for
        if verdict == "held" and (found.get("State") or {}).get("Status") == "created":
            # Created, not started: its run may have died in between. Stale after a grace period.
            first = starting.setdefault(found["Id"], clock())
            if clock() - first >= STARTING_GRACE:
                verdict = "ended"
        if verdict == "ended":
            try:
                engine.remove(found["Id"], LOCK_NAME)
            except Exception:  # the engine is removing it already (auto-remove): look again
                sleep(0.1)
            continue
        if verdict == "held":
            waited_for = holder_of(found)
            if clock() - start >= wait:
                raise LockError("another run holds the lock on this engine: %s. Nothing was changed. Fix: wait "
                                "for that run to end and run again, or raise ambassador_lock_timeout (waited %d s); "
                                "a run that died lets go by itself when its lease ends"
                                % (waited_for, int(wait)))
        sleep(POLL_EVERY)


def _run_of(found):
    return ((found or {}).get("Config") or {}).get("Labels", {}).get(RUN_LABEL)


def renew(engine, run_id):
    """Check that ``run_id`` still holds the engine's lock, and start its lease over.

    :raises LockError: the lock is gone or someone else's (the lease ran out).
    """
    found = engine.inspect(LOCK_NAME)
    verdict = judge(found, run_id)
    if verdict != "ours":
        why = {"free": "it is gone", "ended": "its lease ran out"}.get(verdict) or "it is held by " + holder_of(found)
        raise LockError("this run no longer holds its lock on this engine (%s), so it changes nothing more here. "
                        "Fix: run again; if steps take longer than the lease, raise ambassador_lock_lease" % why)
    engine.signal(found["Id"], LOCK_NAME, "SIGHUP")
    return found["Id"]


def release(engine, run_id):
    """Let go of the engine's lock if ``run_id`` holds it; return whether it did."""
    found = engine.inspect(LOCK_NAME)
    if found is None or _run_of(found) != run_id:
        return False
    engine.remove(found["Id"], LOCK_NAME)
    return True
