# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """What the collection's modules have in common, written once."""

    # A module that reaches a Docker engine (plugins/module_utils/_engine.py): what it needs where it runs.
    ENGINE = r"""
options: {}
author:
  - crosshost.ambassador maintainers (@crosshost)
requirements:
  - docker (the Docker SDK for Python) >= 5.0.3 on the host that runs the module.
  - Below docker 7.1.0, requests < 2.32; below 6.1.0, also urllib3 < 2; below 6.0, Python 3.11 or older.
  - paramiko, for an engine reached by an C(ssh://) URL (also with the OpenSSH client).
"""

    # A module whose action plugin reads and computes on the controller, and changes nothing.
    CONTROLLER = r"""
options: {}
author:
  - crosshost.ambassador maintainers (@crosshost)
attributes:
  check_mode:
    support: full
    description: Changes nothing in any mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
seealso:
  - module: crosshost.ambassador.apply
"""
