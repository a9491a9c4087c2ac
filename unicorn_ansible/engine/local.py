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
from typing import TYPE_CHECKING

import cloudpickle
from returns.result import Failure, Result, Success

from ..errors import UsageError
from ..model.experiment import Deployment
from ..model.foreign import TwinEnum
from ..model.nodes import Architecture, Node
from ..node.journal import iter_records, results_by_name
from ..node.protocol import JOURNAL
from ..node.scheduler import run_pipeline
from ..results.safe_pickle import loader_for

if TYPE_CHECKING:
    from ..model.graph import ExecutionGraph
    from ..node.wire import JSONObject

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

    def __init__(self, execution_graph: ExecutionGraph, node: Node | None = None,
                 task_timeout: float | None = None) -> None:
        self.execution_graph = execution_graph
        self.node = node or this_machine()
        self.task_timeout = task_timeout
        self.execution_graph_results: Result[object, object] | None = None
        self.state: JSONObject = {}
        self.logs: list[str] = []

    def __call__(self) -> Result[object, object]:
        self.execution_graph_results, self.state = run_here(self.execution_graph, self.node, self.task_timeout)
        return self.execution_graph_results


def run_here(execution_graph: ExecutionGraph, node: Node,
             task_timeout: float | None = None) -> tuple[Result[object, object], JSONObject]:
    """Run ``execution_graph`` dispatched for ``node`` in a temporary work folder: its results
    (``Success``/``Failure`` of {task name: [Result, ...]}) and the executor's final state."""
    plan = cloudpickle.loads(Deployment(node, execution_graph).pipeline)
    with tempfile.TemporaryDirectory(prefix="unicorn-local-") as workdir:
        state = run_pipeline(plan, workdir, task_timeout=task_timeout)
        # read back as a run's results are (the same loader, the same admitted types)
        records = list(iter_records(os.path.join(workdir, JOURNAL)))
        results = results_by_name(records, loader_for(node.name))
    wrap = Success if state.get("success") else Failure
    return wrap(results), state


class ExecutorState(TwinEnum):
    """netunicorn's executor states (``from netunicorn.executor import ExecutorState``; its members
    equal netunicorn's of the same name)."""

    LOOKING_FOR_EXECUTION_GRAPH = 0
    EXECUTING = 1
    REPORTING = 2
    FINISHED = 3


class Executor:
    """netunicorn's ``Executor``, as its local_executor notebook builds one by hand::

        executor = Executor(executor_id="local", gateway_endpoint="fake", experiment_id="local", heartbeat=False)
        executor.execution_graph = pipeline
        executor.state = ExecutorState.EXECUTING
        executor()                         # runs the pipeline here; then executor.execution_graph_results

    There is no gateway to fetch a pipeline from or report to: the pipeline is the one given, and
    ``executor_id``, ``gateway_endpoint``, ``experiment_id`` and ``heartbeat`` are kept, not used.
    """

    def __init__(self, executor_id: str | None = None, gateway_endpoint: str | None = None,
                 experiment_id: str | None = None, heartbeat: bool = True) -> None:
        self.executor_id = executor_id or os.environ.get("NETUNICORN_EXECUTOR_ID") or "Unknown"
        self.experiment_id = experiment_id or os.environ.get("NETUNICORN_EXPERIMENT_ID") or "Unknown"
        self.gateway_endpoint, self.heartbeat_flag = gateway_endpoint, heartbeat
        self.execution_graph: ExecutionGraph | None = None
        self.execution_graph_results: Result[object, object] | None = None
        self.state = ExecutorState.LOOKING_FOR_EXECUTION_GRAPH
        #: the executor's final state (status, counts, error), once it ran
        self.final_state: JSONObject = {}

    def __call__(self) -> None:
        """Run the pipeline given (as netunicorn's, it returns nothing: see ``execution_graph_results``)."""
        if self.state == ExecutorState.FINISHED:
            return
        if self.execution_graph is None or self.state == ExecutorState.LOOKING_FOR_EXECUTION_GRAPH:
            raise UsageError("this Executor has no gateway to fetch a pipeline from: set executor.execution_graph "
                             "= pipeline and executor.state = ExecutorState.EXECUTING, or use "
                             "get_local_executor(pipeline)")
        self.execution_graph_results, self.final_state = run_here(self.execution_graph, this_machine())
        self.state = ExecutorState.FINISHED


def get_local_executor(execution_graph: ExecutionGraph) -> LocalExecutor:
    """An executor that runs ``execution_graph`` in this process when called (netunicorn's name)."""
    return LocalExecutor(execution_graph)


__all__ = ["Executor", "ExecutorState", "LocalExecutor", "get_local_executor", "this_machine"]
