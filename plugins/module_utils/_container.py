# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""What a planned container is: one table of its fields, for the planner, the decision and the engine.

Plain data, no Ansible, no Docker. The planner (``_plan``) fills every field with
:func:`planned_container`; the decision (``_reconcile``) compares the :func:`spec` of
a planned container with the one stored on the engine; the Docker wrapper
(``_engine``) creates a container from a spec. A field is added here once, and
all three see it.
"""

from __future__ import annotations


def _same(value):
    return value


def _list(value):
    return list(value or [])


def _sorted(value):
    return sorted(value or [])


def _mapping(value):
    return dict(sorted((value or {}).items()))


def _published(value):
    return sorted((dict(p) for p in value or []), key=lambda p: (p.get("protocol"), p.get("host_port"), p.get("port")))


# name -> (default, normaliser) of what defines a container: a change of any of them recreates it.
# The spec (these fields, normalised) is stored in a label of the container; its hash in another.
FIELDS = {
    "name": (None, _same),
    "kind": (None, _same),  # service, or ambassador
    "side": (None, _same),  # an ambassador's: provider (with the service) or consumer
    "service": (None, _same),
    "image": (None, _same),
    "entrypoint": (None, _same),  # None: the image's own
    "command": (None, _same),  # a string or a list; None: the image's own
    "env": ({}, _mapping),
    "volumes": ([], _list),  # source:/path[:mode], in order
    "network": (None, _same),
    "aliases": ([], _sorted),
    "published": ([], _published),  # {host_ip, host_port, port, protocol}
    "init": (False, bool),
    "restart_policy": ("unless-stopped", _same),
    "dataplane": (None, _same),  # an ambassador's: socat or kernel (_dataplane)
    "cap_add": ([], _sorted),
    "sysctls": ({}, _mapping),
    "user": (None, _same),
    "read_only": (False, bool),
    "cap_drop": ([], _sorted),
    "security_opt": ([], _sorted),
    "memory": (None, _same),  # bytes
    "pids_limit": (None, _same),
}
# Planned, but not part of what defines the container.
PLAN_FIELDS = {
    "tls": (False, bool),  # it speaks mutual TLS with the files of the plan's tls_dir, mounted at /tls
    "target": (None, _same),  # a provider-side ambassador's: the container it forwards to
    # path -> text put in the container's file system before it starts, and again whenever the text changes,
    # without recreating it (a balancing ambassador's replicas, a kernel provider-side ambassador's allow-list:
    # _dataplane.DELIVERED_LOGS).
    "files": ({}, _mapping),
}
# The spec also records which TLS files a container with tls mounts (the fingerprint that
# crosshost.ambassador.tls returns for the run), so that new files recreate it.
SPEC_KEYS = tuple(FIELDS) + ("tls_fingerprint",)
# Fields stored on the engine under an older name: a container's kind is "role" in the stored spec
# (and its label crosshost.ambassador.role), as every release wrote it. Renaming it there would change
# the spec hash of every container, and recreate them all on upgrade.
_STORED_AS = {"kind": "role"}
_FROM_STORED = dict((stored, key) for key, stored in _STORED_AS.items())
_DEFAULTS = dict((key, default) for key, (default, _n) in tuple(FIELDS.items()) + tuple(PLAN_FIELDS.items()))
_EMPTY = dict((key, type(default)) for key, default in _DEFAULTS.items() if isinstance(default, (list, dict)))


def planned_container(**values):
    """A planned container: ``values``, and every other field at its default (a new empty list
    or mapping each time)."""
    container = dict(_DEFAULTS)
    for key, empty in _EMPTY.items():
        if key not in values:
            container[key] = empty()
    container.update(values)
    if len(container) != len(_DEFAULTS):
        raise KeyError("unknown container field(s): %s" % ", ".join(sorted(set(values) - set(_DEFAULTS))))
    return container


def spec(planned, tls_fingerprint=None):
    """What defines a planned container, normalised (stable ordering), as stored on the engine.

    :param tls_fingerprint: the run's TLS files' fingerprint; recorded only if the container uses TLS.
    """
    found = dict((key, normalise(planned.get(key, default))) for key, (default, normalise) in FIELDS.items())
    found["tls_fingerprint"] = tls_fingerprint if planned.get("tls") else None
    return found


def stored(values):
    """A spec as it is stored on the engine (its label and hash): the one place that maps :data:`_STORED_AS`."""
    return dict((_STORED_AS.get(key, key), value) for key, value in values.items())


def from_stored(found):
    """The spec stored on a container (:func:`stored`), back in this table's names."""
    return dict((_FROM_STORED.get(key, key), value) for key, value in found.items())
