"""Experiments: which pipeline runs on which node, dispatched and serialized on the client."""

from __future__ import annotations

import contextlib
import copy

import threading
from typing import Dict, Iterable, Iterator, List, Optional, Union

import cloudpickle

from . import environment as _environment, flags as _flags, graph as _graph, pipeline as _pipeline, task as _task
from .environment import EnvironmentDefinition, ShellExecution
from .graph import ExecutionGraph, GraphPlan, dispatch_graph
from .nodes import CountableNodePool, Node, Nodes
from .pipeline import Pipeline, as_graph
from .task import Task, TaskDispatcher, TaskElement
from ..compat import netunicorn as _netunicorn
from ..errors import ExperimentError, GraphError

# Hosts have no unicorn_ansible installed: the model classes a pickled pipeline
# refers to travel inside the pickle (by value), like the user's own classes.
_SHIPPED_MODULES = (_task, _environment, _pipeline, _graph, _flags)
_pickle_lock = threading.Lock()


@contextlib.contextmanager
def _model_by_value() -> Iterator[None]:
    _netunicorn.register_netunicorn_by_value()
    with _pickle_lock:
        for module in _SHIPPED_MODULES:
            cloudpickle.register_pickle_by_value(module)
        try:
            yield
        finally:
            for module in _SHIPPED_MODULES:
                cloudpickle.unregister_pickle_by_value(module)


def for_node(obj: object) -> object:
    """``obj`` as a host gets it: a Pipeline run stage by stage loses its networkx graph (hosts
    have no networkx; they run the stages)."""
    if isinstance(obj, Pipeline) and getattr(obj, "graph", None) is not None and as_graph(obj) is None:
        obj = copy.copy(obj)
        obj.graph = None
    return obj


def serialize_for_node(obj: object) -> bytes:
    """Cloudpickle an object for a host that has only Python, cloudpickle and returns."""
    with _model_by_value():
        return cloudpickle.dumps(for_node(obj))


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
    return task


def _dispatched(pipeline: Union[Pipeline, ExecutionGraph], node: Node) -> Union[Pipeline, GraphPlan]:
    """What ``node`` runs: a copy of a plain pipeline with its TaskDispatchers replaced by their
    tasks for this node, or, for an ExecutionGraph or CyclePipeline, the validated graph's plan."""
    graph = as_graph(pipeline)
    if graph is not None:
        try:
            return dispatch_graph(graph, lambda element: _dispatch_one(element, node))
        except ValueError as exc:
            raise GraphError(f"node {node.name}: {exc}") from exc
    dispatched = copy.copy(pipeline)
    dispatched.tasks = [[_dispatch_one(element, node) for element in stage] for stage in pipeline.tasks]
    dispatched.graph = dispatched.stage_graph()  # the dispatched tasks' own graph
    return for_node(dispatched)


class Deployment:
    """One pipeline on one node, dispatched for that node and serialized.

    - ``pipeline``: cloudpickled bytes of the node's pipeline (TaskDispatchers already dispatched)
    - ``environment_definition.commands``: every task's requirements, stage by stage, task by task
    - ``prepared`` / ``error``: filled in by the engine after deployment
    - ``keep_alive_timeout_minutes``: this node's time limit (netunicorn's name); None: the run's
    - ``cleanup``: netunicorn's flag (remove containers afterwards); kept, nothing to clean up here
    - ``notices``: what the user should know about how this deployment runs (printed by ``run``)

    netunicorn's Node, Pipeline, CyclePipeline and ExecutionGraph are accepted as they are.
    """

    def __init__(self, node: Node, pipeline: Union[Pipeline, ExecutionGraph],
                 keep_alive_timeout_minutes: Optional[float] = None, cleanup: bool = True) -> None:
        node, pipeline = _netunicorn.as_node(node), _netunicorn.as_flow(pipeline)
        if not isinstance(node, Node):
            raise ExperimentError(f"expected a Node, got {type(node).__name__}: {node!r}")
        if not isinstance(pipeline, (Pipeline, ExecutionGraph)):
            raise ExperimentError(
                f"node {node.name}: expected a Pipeline, CyclePipeline or ExecutionGraph, got {type(pipeline).__name__}"
            )
        environment = pipeline.environment_definition
        if not isinstance(environment, EnvironmentDefinition):
            raise ExperimentError(
                f"node {node.name}: pipeline {pipeline.name} asks for a {type(environment).__name__} "
                "environment; this engine runs ShellExecution and DockerImage environments"
            )
        self.node: Node = node
        self.prepared: bool = False
        self.executor_id: str = ""
        self.error: Optional[Exception] = None
        self.keep_alive_timeout_minutes = keep_alive_timeout_minutes
        self.cleanup = cleanup
        notice = getattr(pipeline, "environment_notice", None)
        self.notices: List[str] = [notice.format(node=node.name)] if notice else []
        dispatched = _dispatched(pipeline, node)
        self.environment_definition: EnvironmentDefinition = copy.deepcopy(environment)
        tasks = (v for v in dispatched.vertices if isinstance(v, Task)) if isinstance(dispatched, GraphPlan) \
            else (task for stage in dispatched.tasks for task in stage)
        for task in tasks:
            self.environment_definition.commands.extend(task.requirements)
        # after the tasks' own requirements, which may install them already
        self.environment_definition.commands.extend(_netunicorn.runtime_requirements(dispatched))
        try:
            self.pipeline: bytes = serialize_for_node(dispatched)
        except Exception as exc:
            raise ExperimentError(
                f"node {node.name}: pipeline {pipeline.name} cannot be serialized with cloudpickle: "
                f"{type(exc).__name__}: {exc}; keep only picklable values in your tasks' attributes"
            ) from exc

    # netunicorn names it execution_graph in newer versions
    @property
    def execution_graph(self) -> bytes:
        return self.pipeline

    def __str__(self) -> str:
        return f"Deployment: Node={self.node.name}, prepared={self.prepared}, error={self.error}"

    __repr__ = __str__


class Experiment:
    """A mapping of pipelines to nodes: one Deployment per node.

    ``deployment_context`` is netunicorn's per-connector context ({connector: {key: value}});
    this engine has no connectors and only keeps it with the experiment."""

    def __init__(self, deployment_context: Optional[Dict[str, Dict[str, str]]] = None) -> None:
        self.deployment_map: List[Deployment] = []
        self.deployment_context = deployment_context

    def append(self, node: Node, pipeline: Union[Pipeline, ExecutionGraph],
               keep_alive_timeout_minutes: Optional[float] = None) -> "Experiment":
        """Dispatch and serialize ``pipeline`` for ``node`` and add it as a deployment; returns self.

        ``keep_alive_timeout_minutes`` limits how long this node's pipeline may run (default: the run's limit)."""
        if any(d.node.name == getattr(node, "name", None) for d in self.deployment_map):
            raise ExperimentError(
                f"node {node.name} already has a pipeline in this experiment; "
                "one node runs one pipeline (put the tasks in one pipeline, or use another node)"
            )
        self.deployment_map.append(Deployment(node, pipeline, keep_alive_timeout_minutes))
        return self

    def map(self, pipeline: Union[Pipeline, ExecutionGraph], nodes: Union[Iterable[Node], Nodes]) -> "Experiment":
        """Append ``pipeline`` for every node of ``nodes`` (a sequence of nodes or a pool); returns self."""
        members = nodes.flatten() if isinstance(nodes, CountableNodePool) else list(nodes)
        for node in map(_netunicorn.as_node, members):
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

    def __add__(self, other: "Experiment") -> "Experiment":
        merged = Experiment()
        for deployment in list(self) + list(other):
            if any(d.node.name == deployment.node.name for d in merged.deployment_map):
                raise ExperimentError(
                    f"both experiments have a pipeline for node {deployment.node.name}; "
                    "one node runs one pipeline"
                )
            merged.deployment_map.append(deployment)
        if self.deployment_context or other.deployment_context:
            merged.deployment_context = {**(self.deployment_context or {}), **(other.deployment_context or {})}
        return merged

    def __str__(self) -> str:
        return "\n".join(f" - {d}" for d in self.deployment_map)

    __repr__ = __str__


__all__ = ["Deployment", "Experiment", "ShellExecution", "serialize_for_node"]
