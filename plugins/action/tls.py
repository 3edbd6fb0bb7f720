# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of crosshost.ambassador.tls: keep each host's TLS material current."""

from __future__ import annotations

import os

from ansible_collections.crosshost.ambassador.plugins.plugin_utils._action import ControllerAction
from ansible_collections.crosshost.ambassador.plugins.plugin_utils._pki import (
    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR, PKIError, ensure_ca, ensure_host, fingerprint)

DEFAULT_PKI_DIR = "~/.ansible/crosshost.ambassador/pki"


class ActionModule(ControllerAction):
    _VALID_ARGS = frozenset(("hosts", "pki_dir", "ca_cert", "ca_key"))

    def act(self, args, task_vars, result):
        if not HAS_CRYPTOGRAPHY:
            result.update(failed=True, msg="tls: the Python library cryptography is needed on the controller "
                          "(pip install cryptography)", exception=CRYPTOGRAPHY_IMPORT_ERROR)
            return result
        wanted = args.get("hosts")
        if not isinstance(wanted, dict):
            result.update(failed=True, msg="tls: hosts must map each hostname to its addresses (the plan step's "
                                           "tls_hosts)")
            return result
        pki_dir = os.path.expanduser(args.get("pki_dir") or DEFAULT_PKI_DIR)
        write = not self._task.check_mode
        hosts = {}
        changed = False
        try:
            ca_cert, ca_key, ca_changed = ensure_ca(pki_dir, args.get("ca_cert"), args.get("ca_key"), write=write)
            changed = changed or ca_changed
            for host in sorted(wanted):
                addresses = list(wanted[host] or [])
                files, host_changed = ensure_host(pki_dir, host, addresses, ca_cert, ca_key, write=write)
                changed = changed or host_changed
                current = write or not host_changed
                hosts[host] = {"files": files, "fingerprint": fingerprint(files) if current else "pending"}
        except (PKIError, OSError) as exc:
            result.update(failed=True, msg="tls: %s" % exc)
            return result
        result.update(changed=changed, pki_dir=pki_dir, hosts=hosts)
        return result
