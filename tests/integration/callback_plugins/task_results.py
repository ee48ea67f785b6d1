# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-harness stdout callback: every task result as one JSON document at the end of the run.

ansible-core has no JSON stdout callback of its own (ansible.posix.json is a separate collection),
and the harness must not need more than ansible-core.
"""

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_results
type: stdout
short_description: every task result as JSON (integration test harness)
description:
  - Prints one JSON document with every task's result per host, and the play recap, when the playbook ends.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "task_results"

    def __init__(self):
        super().__init__()
        self.tasks = []

    def _record(self, result, **extra):
        task = result._task
        if not self.tasks or self.tasks[-1]["uuid"] != task._uuid:
            self.tasks.append({"uuid": task._uuid, "name": task.get_name(), "hosts": {}})
        # _result is the same dict `register` stores (already censored for no_log).
        self.tasks[-1]["hosts"][result._host.get_name()] = dict(result._result, **extra)

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        summary = {h: stats.summarize(h) for h in hosts}
        self._display.display(json.dumps({"tasks": self.tasks, "stats": summary}, default=str))
