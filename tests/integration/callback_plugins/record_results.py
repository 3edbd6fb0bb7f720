# -*- coding: utf-8 -*-
"""Test-only callback: write every task result and the play recap to $RECORD_RESULTS_FILE as JSON.

Lets the integration tests read what the modules returned (actions, messages)
instead of scraping the human-readable output.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: record_results
type: aggregate
short_description: Record task results as JSON for the integration tests
description: Writes every task result and the play recap to the file named by RECORD_RESULTS_FILE.
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.results = []

    def _record(self, result, status, host=None):
        self.results.append({
            "host": host or result._host.get_name(),
            "task": result._task.get_name(),
            "action": result._task.action,
            "status": status,
            "result": result._result,
        })

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_item_on_ok(self, result):
        # A loop item whose facts go to another host (delegate_facts): record it as that host's result,
        # as a task on that host would have been (the role hands out ambassador_environment this way).
        if result._task.delegate_facts and result._task.delegate_to and "ansible_facts" in result._result:
            self._record(result, "ok", host=result._task.delegate_to)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("RECORD_RESULTS_FILE")
        if not path:
            return
        summary = dict((host, stats.summarize(host)) for host in sorted(stats.processed))
        with open(path, "w") as handle:
            json.dump({"results": self.results, "stats": summary}, handle, default=str)
