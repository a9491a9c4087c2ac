"""profile_tasks-style timing for the benchmark's baselines: per task, the first start and the last end
over all hosts, and when the playbook started, as JSON to the file in $BENCH_TASK_TIMES at the end."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: per-task wall times (first start, last end) for bench/e2e_bench.py
description: writes the playbook's start and each task's first start and last end as JSON to the file named by BENCH_TASK_TIMES
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.playbook_start = 0.0
        self.tasks: dict[str, dict[str, float]] = {}

    def v2_playbook_on_start(self, playbook) -> None:
        self.playbook_start = time.time()

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self.tasks.setdefault(task.get_name(), {"start": time.time(), "end": time.time()})

    def _ended(self, result, *args, **kwargs) -> None:
        entry = self.tasks.get(result._task.get_name())
        if entry is not None:
            entry["end"] = max(entry["end"], time.time())

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_unreachable = v2_runner_on_skipped = _ended

    def v2_playbook_on_stats(self, stats) -> None:
        target = os.environ.get("BENCH_TASK_TIMES")
        if target:
            with open(target, "w") as handle:
                json.dump({"playbook_start": self.playbook_start,
                           "tasks": [dict(name=k, **v) for k, v in self.tasks.items()]}, handle)
