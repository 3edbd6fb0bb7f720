# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of crosshost.ambassador.tls: keep each host's TLS material current."""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.crosshost.ambassador.plugins.plugin_utils._pki import (
    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR, PKIError, ensure_ca, ensure_host, fingerprint)

DEFAULT_PKI_DIR = "~/.ansible/crosshost.ambassador/pki"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("plans", "pki_dir", "ca_cert", "ca_key"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        if not HAS_CRYPTOGRAPHY:
            result.update(failed=True, msg="tls: the Python library cryptography is needed on the controller "
                          "(pip install cryptography)", exception=CRYPTOGRAPHY_IMPORT_ERROR)
            return result
        plans = args.get("plans")
        if not isinstance(plans, dict):
            result.update(failed=True, msg="tls: plans must be the plans returned by crosshost.ambassador.plan")
            return result
        pki_dir = os.path.expanduser(args.get("pki_dir") or DEFAULT_PKI_DIR)
        write = not self._task.check_mode
        hosts = {}
        changed = False
        try:
            ca_cert, ca_key, ca_changed = ensure_ca(pki_dir, args.get("ca_cert"), args.get("ca_key"), write=write)
            changed = changed or ca_changed
            for host in sorted(plans):
                plan = plans[host]
                if not plan.get("tls_dir"):
                    continue
                addresses = [plan["advertise_address"]] if plan.get("advertise_address") else []
                files, host_changed = ensure_host(pki_dir, host, addresses, ca_cert, ca_key, write=write)
                changed = changed or host_changed
                current = write or not host_changed
                hosts[host] = {"files": files, "fingerprint": fingerprint(files) if current else "pending"}
        except (PKIError, OSError) as exc:
            result.update(failed=True, msg="tls: %s" % exc)
            return result
        result.update(changed=changed, pki_dir=pki_dir, hosts=hosts)
        return result
