"""Experiments: which pipeline runs on which node, dispatched and serialized on the client."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

from ..errors import ExperimentError, GraphError
from . import foreign
from .environment import EnvironmentDefinition, ShellExecution
from .graph import ExecutionGraph, GraphPlan, dispatch_graph
from .nodes import CountableNodePool, Node
from .pipeline import Pipeline, as_graph
from .task import Task, TaskDispatcher, TaskElement, with_declared
from .travel import UnpicklableError, for_node, serialize_for_node, ship


def _dispatch_one(element: TaskElement, node: Node) -> Task:
    """The Task a pipeline element is on ``node``: a TaskDispatcher's dispatch(node), or the task itself."""
    if not isinstance(element, TaskDispatcher):
        return element
    try:
        task = element.dispatch(node)
    except Exception as exc:
        raise ExperimentError(
            f"dispatching {type(element).__name__} for node {node.name} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(task, Task):
        raise ExperimentError(
            f"{type(element).__name__}.dispatch() returned {type(task).__name__} for node "
            f"{node.name}; it must return a Task instance"
        )
    return with_declared(task, list(getattr(element, "artifacts", None) or []))  # the dispatcher's declared files


def _dispatched(pipeline: Pipeline | ExecutionGraph, node: Node) -> Pipeline | GraphPlan:
    """What ``node`` runs: a copy of a plain pipeline with its TaskDispatchers replaced by their
    tasks for this node, or, for an ExecutionGraph or CyclePipeline, the validated graph's plan."""
    graph = as_graph(pipeline)
    if graph is None and isinstance(pipeline, Pipeline):  # run stage by stage
        dispatched = copy.copy(pipeline)
        dispatched.tasks = [[_dispatch_one(element, node) for element in stage] for stage in pipeline.tasks]
        dispatched.graph = None  # the dispatched tasks' own graph (what their stages make)
        return for_node(dispatched)
    try:
        return dispatch_graph(graph or pipeline, lambda element: _dispatch_one(element, node))
    except ValueError as exc:
        raise GraphError(f"node {node.name}: {exc}") from exc


def _entered_node(value: object) -> Node:
    """A node given to an experiment, as ours (netunicorn's: model/foreign.py)."""
    node = foreign.entering(value)
    if not isinstance(node, Node):
        raise ExperimentError(f"expected a Node, got {type(node).__name__}: {node!r}")
    return node


def _entered_flow(value: object, node: Node) -> Pipeline | ExecutionGraph:
    """A pipeline or graph given to an experiment, as ours (netunicorn's: model/foreign.py)."""
    flow = foreign.entering(value)
    if not isinstance(flow, (Pipeline, ExecutionGraph)):
        raise ExperimentError(
            f"node {node.name}: expected a Pipeline, CyclePipeline or ExecutionGraph, got {type(flow).__name__}"
        )
    return flow


class Deployment:
    """One pipeline on one node, dispatched for that node and serialized.

    - ``pipeline``: cloudpickled bytes of the node's pipeline (TaskDispatchers already dispatched)
    - ``environment_definition.commands``: every task's requirements, stage by stage, task by task
    - ``prepared`` / ``error``: filled in by the engine after deployment
    - ``keep_alive_timeout_minutes``: this node's time limit (netunicorn's name); None: the run's
    - ``cleanup``: netunicorn's flag: a DockerImage's container is removed when its pipeline ends
      (False: kept, stopped, for inspection)
    - ``notices``: what the user should know about how this deployment ran (from its host)
    - ``executor_id``: the deployment's name in the run (the node's name, or ``NODE#N`` for the
      node's N-th pipeline); set when it is appended to an Experiment

    netunicorn's Node, Pipeline, CyclePipeline, ExecutionGraph and environment definitions are
    accepted as they are (converted to ours here: model/foreign.py).
    """

    def __init__(self, node: Node, pipeline: Pipeline | ExecutionGraph,
                 keep_alive_timeout_minutes: float | None = None, cleanup: bool = True,
                 artifacts: Iterable[str] = ()) -> None:
        node, pipeline = _entered_node(node), _entered_flow(pipeline, node)
        environment = foreign.entering(pipeline.environment_definition)
        if not isinstance(environment, EnvironmentDefinition):
            raise ExperimentError(
                f"node {node.name}: pipeline {pipeline.name} asks for a {type(environment).__name__} "
                "environment; this engine runs ShellExecution and DockerImage environments"
            )
        self.node: Node = node
        self.prepared: bool = False
        self.executor_id: str = node.name
        self.error: Exception | None = None
        self.keep_alive_timeout_minutes = keep_alive_timeout_minutes
        self.cleanup = cleanup
        #: filled in from the host's deployment (e.g. netunicorn's default DockerImage run as ShellExecution)
        self.notices: list[str] = []
        dispatched = _dispatched(pipeline, node)
        self.environment_definition: EnvironmentDefinition = copy.deepcopy(environment)
        elements = dispatched.vertices if isinstance(dispatched, GraphPlan) else \
            [task for stage in dispatched.tasks for task in stage]
        tasks = [task for task in elements if isinstance(task, Task)]
        #: files brought home from the node: {"task": name or None (the pipeline's), "pattern": path or glob}
        self.artifacts: list[dict[str, str | None]] = [{"task": None, "pattern": str(p)}
                                                       for p in [*getattr(pipeline, "artifacts", []), *artifacts]]
        for task in tasks:
            self.environment_definition.commands.extend(task.requirements)
            self.artifacts += [{"task": task.name, "pattern": str(p)} for p in getattr(task, "artifacts", [])]
        try:  # first: what cannot travel is named here (the scan below would fail unexplained)
            shipment = ship(dispatched, tasks)
        except UnpicklableError as exc:
            raise ExperimentError(f"node {node.name}: pipeline {pipeline.name}: {exc}") from exc
        #: what the pipeline's foreign code needs on the host (model/foreign.py), after the tasks' own
        #: requirements, which may install it already
        self.host_requirements: list[str] = foreign.host_requirements(dispatched)
        self.environment_definition.commands.extend(self.host_requirements)
        self.pipeline: bytes = shipment.pipeline
        #: installed packages the pipeline imports on the host: module -> {"tasks": [...], "install": ...}
        self.imports = shipment.imports

    # netunicorn names it execution_graph in newer versions
    @property
    def execution_graph(self) -> bytes:
        return self.pipeline

    def __str__(self) -> str:
        executor = f", executor={self.executor_id}" if self.executor_id != self.node.name else ""
        return f"Deployment: Node={self.node.name}{executor}, prepared={self.prepared}, error={self.error}"

    __repr__ = __str__


#: between a node's name and the number of its second, third... deployment: ``h1``, ``h1#2``, ``h1#3``
EXECUTOR_SEPARATOR = "#"


def executor_id(node: str, deployments: Iterable[Deployment]) -> str:
    """The id of a new deployment on ``node`` beside ``deployments``: the node's name for its first
    (so a run of one pipeline per node reads as it always did), ``NODE#2``, ``NODE#3``... for the next.
    ``#`` starts a comment in INI inventories, so no inventory host is named like that; the id names
    the deployment's folders on the controller and on the host."""
    count = sum(1 for d in deployments if d.node.name == node)
    return node if count == 0 else f"{node}{EXECUTOR_SEPARATOR}{count + 1}"


class Experiment:
    """A mapping of pipelines to nodes: one Deployment per ``append``. A node may get several
    pipelines (``append(node, p1).append(node, p2)``), as netunicorn allows: each is a deployment
    with its own executor on the host, named by its ``executor_id`` (``h1``, then ``h1#2``).

    ``deployment_context`` is netunicorn's per-connector context ({connector: {key: value}});
    this engine has no connectors and only keeps it with the experiment."""

    def __init__(self, deployment_context: dict[str, dict[str, str]] | None = None) -> None:
        self.deployment_map: list[Deployment] = []
        self.deployment_context = deployment_context

    def append(self, node: Node, pipeline: Pipeline | ExecutionGraph,
               keep_alive_timeout_minutes: float | None = None, artifacts: Iterable[str] = ()) -> Experiment:
        """Dispatch and serialize ``pipeline`` for ``node`` and add it as a deployment; returns self.

        ``keep_alive_timeout_minutes`` limits how long this node's pipeline may run (default: the run's limit).
        ``artifacts``: paths or glob patterns on the node whose files come home when its pipeline ends."""
        deployment = Deployment(node, pipeline, keep_alive_timeout_minutes, artifacts=artifacts)
        deployment.executor_id = executor_id(deployment.node.name, self.deployment_map)
        self.deployment_map.append(deployment)
        return self

    def map(self, pipeline: Pipeline | ExecutionGraph, nodes: Iterable[Node] | CountableNodePool) -> Experiment:
        """Append ``pipeline`` for every node of ``nodes`` (a sequence of nodes or a pool); returns self."""
        members: list[object] = list(nodes.flatten() if isinstance(nodes, CountableNodePool) else nodes)
        for node in map(foreign.entering, members):
            if not isinstance(node, Node):
                raise ExperimentError(f"Experiment.map expects nodes, got {type(node).__name__}: {node!r}")
            self.append(node, pipeline)
        return self

    def __getitem__(self, item: int) -> Deployment:
        return self.deployment_map[item]

    def __iter__(self) -> Iterator[Deployment]:
        return iter(self.deployment_map)

    def __len__(self) -> int:
        return len(self.deployment_map)

    def __add__(self, other: Experiment) -> Experiment:
        merged = Experiment()
        for deployment in list(self) + list(other):
            deployment = copy.copy(deployment)  # the same deployment may be in both: each gets its own id
            deployment.executor_id = executor_id(deployment.node.name, merged.deployment_map)
            merged.deployment_map.append(deployment)
        if self.deployment_context or other.deployment_context:
            merged.deployment_context = {**(self.deployment_context or {}), **(other.deployment_context or {})}
        return merged

    def __str__(self) -> str:
        return "\n".join(f" - {d}" for d in self.deployment_map)

    __repr__ = __str__


__all__ = ["EXECUTOR_SEPARATOR", "Deployment", "Experiment", "executor_id", "ShellExecution", "serialize_for_node"]
