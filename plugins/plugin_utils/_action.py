# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""What the collection's action plugins share: they work on the controller alone."""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):
    """An action that reads its arguments and the play's variables, and contacts no host.
    A subclass names its ``_VALID_ARGS`` and implements :meth:`act`."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ControllerAction, self).run(tmp, task_vars)
        del tmp
        return self.act(self._task.args, task_vars or {}, result)

    @staticmethod
    def refuse(result, problems):
        """``result`` failed for ``problems``, sentences that say why nothing was changed."""
        result.update(failed=True, problems=problems, msg="crosshost.ambassador: nothing was changed: %s."
                      % "; ".join(problems))
        return result

    def act(self, args, task_vars, result):
        """Fill in and return ``result`` (the task's result so far) from ``args`` and ``task_vars``."""
        raise NotImplementedError
