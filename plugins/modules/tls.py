#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done on the controller by the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls
short_description: Keep a CA and each host's TLS key and certificate for mutual TLS between ambassadors
version_added: 0.1.0
description:
  - Runs on the controller. For every host whose plan uses mutual TLS (C(tls_dir) set), makes sure the
    controller keeps a key and a certificate signed by the CA, valid for the host's inventory name and its
    advertise address, for TLS client and server use; and returns where they are and their fingerprint.
  - The CA is the user's (O(ca_cert) and O(ca_key)) or one kept in O(pki_dir), made when missing.
  - Files are made anew only when missing, not matching the CA or the names, or expiring within 30 days.
  - The role M(crosshost.ambassador.topology) then copies each host's files to its C(tls_dir), and
    M(crosshost.ambassador.apply) mounts them read-only into the host's ambassadors.
author:
  - crosshost.ambassador maintainers (@crosshost)
requirements:
  - cryptography (a dependency of ansible-core) on the controller
attributes:
  check_mode:
    support: full
    description: Writes nothing; reports whether files would be made, with fingerprint C(pending) for those.
  diff_mode:
    support: none
    description: Certificates and keys are not shown.
  idempotent:
    support: full
    description: Files are made again only when missing, no longer matching, or expiring.
options:
  hosts:
    description:
      - Hostname to the addresses its certificate must also be valid for; the plan step returns it as
        C(tls_hosts), listing the hosts whose ambassadors use TLS and their advertise addresses.
    type: dict
    required: true
  pki_dir:
    description: Controller directory of the CA (unless the user's) and the hosts' files.
    type: path
    default: ~/.ansible/crosshost.ambassador/pki
  ca_cert:
    description: The user's CA certificate (PEM) on the controller. Goes with O(ca_key).
    type: path
  ca_key:
    description: The user's CA key (PEM, unencrypted) on the controller. Goes with O(ca_cert).
    type: path
seealso:
  - module: crosshost.ambassador.plan
  - module: crosshost.ambassador.apply
"""

EXAMPLES = r"""
- name: Keep every TLS host's key and certificate current
  crosshost.ambassador.tls:
    hosts: "{{ topology.tls_hosts }}"
  run_once: true
  register: tls
"""

RETURN = r"""
hosts:
  description: For each host that uses TLS, its files on the controller and their fingerprint.
  returned: success
  type: dict
  sample:
    host2:
      fingerprint: "sha256:5f0c..."
      files: {ca.pem: /root/.ansible/crosshost.ambassador/pki/hosts/host2/ca.pem,
              cert.pem: /root/.ansible/crosshost.ambassador/pki/hosts/host2/cert.pem,
              key.pem: /root/.ansible/crosshost.ambassador/pki/hosts/host2/key.pem}
pki_dir:
  description: The directory used.
  returned: success
  type: str
"""
