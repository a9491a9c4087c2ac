"""Running a pipeline in this process, without Ansible, for debugging (netunicorn's local executor).

    executor = get_local_executor(pipeline)
    executor()
    print(executor.execution_graph_results)   # Success({task name: [Result, ...]}) or Failure(...)

The pipeline is dispatched for this machine and run by the same executor the hosts run,
in a temporary work folder; requirements are not run (netunicorn's local executor does
not run them either): install what the tasks need first.
"""

from __future__ import annotations

import os
import platform
import tempfile
from typing import Any

import cloudpickle
from returns.result import Failure, Result, Success

from ..model.experiment import Deployment
from ..model.nodes import Architecture, Node
from ..node.journal import iter_records, results_by_name
from ..node.protocol import JOURNAL
from ..node.scheduler import run_pipeline
from ..results.safe_pickle import loader_for

_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def this_machine() -> Node:
    """This machine as a node, its architecture from the platform (for TaskDispatchers)."""
    system = {"Linux": "linux", "Windows": "win"}.get(platform.system())
    machine = _MACHINES.get(platform.machine().lower())
    value = f"{system}/{machine}" if system and machine else "unknown"
    known = {a.value for a in Architecture}
    return Node("localhost", {}, Architecture(value if value in known else "unknown"))


class LocalExecutor:
    """Runs one pipeline (Pipeline, CyclePipeline or ExecutionGraph, ours or netunicorn's) here.

    After the call, ``execution_graph_results`` is ``Success(results)`` when every task
    succeeded, ``Failure(results)`` otherwise; ``results`` maps task names to lists of Results.
    ``state`` is the executor's final state (status, counts, error)."""

    def __init__(self, execution_graph: Any, node: Node | None = None,
                 task_timeout: float | None = None) -> None:
        self.execution_graph = execution_graph
        self.node = node or this_machine()
        self.task_timeout = task_timeout
        self.execution_graph_results: Result[object, object] | None = None
        self.state: dict[str, Any] = {}
        self.logs: list[str] = []

    def __call__(self) -> Result[object, object]:
        plan = cloudpickle.loads(Deployment(self.node, self.execution_graph).pipeline)
        with tempfile.TemporaryDirectory(prefix="unicorn-local-") as workdir:
            self.state = run_pipeline(plan, workdir, task_timeout=self.task_timeout)
            # read back as a run's results are (the same loader, the same admitted types)
            records = list(iter_records(os.path.join(workdir, JOURNAL)))
            results = results_by_name(records, loader_for(self.node.name))
        wrap = Success if self.state.get("success") else Failure
        self.execution_graph_results = wrap(results)
        return self.execution_graph_results


def get_local_executor(execution_graph: Any) -> LocalExecutor:
    """An executor that runs ``execution_graph`` in this process when called (netunicorn's name)."""
    return LocalExecutor(execution_graph)


__all__ = ["LocalExecutor", "get_local_executor", "this_machine"]
