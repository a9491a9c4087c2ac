"""Pipelines: stages of tasks, run in order; the tasks of one stage run in parallel."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Collection, Hashable, Iterable
from typing import TYPE_CHECKING, cast

from .environment import EnvironmentDefinition
from .graph import ExecutionGraph
from .task import TaskElement

if TYPE_CHECKING:
    from networkx import DiGraph

PipelineElement = TaskElement | Collection[TaskElement]


class Pipeline(ExecutionGraph):
    """
    Pipeline is a class that takes a sequence of Tasks and executes them in order.
    Each element should be either a Task (or TaskDispatcher) or a collection of them:
    a list, tuple or set is one stage whose tasks are executed in parallel.

    The result of pipeline execution is a Success if all tasks succeed, a Failure otherwise.
    If early_stopping is True (the default), no stage starts after a stage in which a task failed.

    As in netunicorn, a Pipeline is an ExecutionGraph: ``graph`` is
    ``root -> stage 1 tasks -> 1 -> stage 2 tasks -> 2 ...`` (the integers are the stages'
    synchronisation points, ``last_stage`` the last of them). It runs stage by stage; a graph
    changed by hand (``pipeline.graph.add_edge(...)``) runs as the graph it has become.
    ``graph`` is made from the stages when first asked for: a pipeline nobody asks it of runs
    without networkx being imported (0.16 s of every ``unicorn-ansible run``).
    """

    def __init__(
        self,
        tasks: Iterable[PipelineElement] = (),
        early_stopping: bool = True,
        report_results: bool = True,
        environment_definition: EnvironmentDefinition | None = None,
        name: str | None = None,
        artifacts: Iterable[str] = (),
    ) -> None:
        super().__init__(early_stopping, report_results, environment_definition, name)
        self.artifacts = [str(pattern) for pattern in artifacts]
        self.tasks: list[list[TaskElement]] = []
        self.last_stage: str | int = "root"
        for element in tasks:
            self.then(element)

    def _new_graph(self) -> DiGraph | None:
        return None  # what the stages make, made when asked for (see ``graph``)

    @property
    def graph(self) -> DiGraph:
        """The networkx DiGraph of the flow (made from the stages the first time it is asked for)."""
        graph = self._made_graph()
        if graph is None:
            graph = self.__dict__["_graph"] = self.stage_graph()
        return graph

    @graph.setter
    def graph(self, value: DiGraph | None) -> None:
        self.__dict__["_graph"] = value  # None: what the stages make

    def _made_graph(self) -> DiGraph | None:
        """The graph if it was made (None: it is what the stages make); a pipeline pickled before
        the graph was made lazily has it as ``graph``."""
        state = self.__dict__
        return state["_graph"] if "_graph" in state else state.get("graph")

    def then(self, element: PipelineElement) -> Pipeline:
        """Add a task, or a list/tuple/set of tasks run in parallel, as the next stage; returns self.
        An empty collection adds an empty stage, as netunicorn's does (a stage after it cannot
        be reached, which the pipeline's validation then reports)."""
        if isinstance(element, (list, tuple, set, frozenset)):
            stage: list[TaskElement] = list(element)
        else:  # a Task or TaskDispatcher (a collection of another kind is one too, as netunicorn has it)
            stage = [cast("TaskElement", element)]
        self._check_stage(stage)
        next_stage = self.last_stage + 1 if isinstance(self.last_stage, int) else 1
        if self._made_graph() is not None or not stage:  # an empty stage is in the graph only
            self.graph.add_edges_from((self.last_stage, task) for task in stage)
            self.graph.add_edges_from((task, next_stage) for task in stage)
        self.last_stage = next_stage
        if stage:
            self.tasks.append(stage)
        return self

    def _check_stage(self, stage: list[TaskElement]) -> None:
        known = {task.name for existing in self.tasks for task in existing}
        for task in stage:
            if not hasattr(task, "run") and not hasattr(task, "dispatch"):
                raise TypeError(
                    f"Pipeline {self.name}: expected a Task or TaskDispatcher, got {type(task).__name__}"
                )
            if task.name in known:
                warnings.warn(
                    f"Task with name {task.name} already exists in pipeline {self.name}; "
                    "its results are reported under the same name.",
                    stacklevel=3,
                )
            known.add(task.name)

    def stage_graph(self) -> DiGraph:
        """The graph the stages make: root -> stage 1 tasks -> 1 -> stage 2 tasks -> 2 ..."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_node("root")
        previous: Hashable = "root"
        for number, stage in enumerate(self.tasks, start=1):
            graph.add_edges_from((previous, task) for task in stage)
            graph.add_edges_from((task, number) for task in stage)
            previous = number
        return graph

    def runs_by_stages(self) -> bool:
        """True while ``graph`` is what the stages make (nobody changed it by hand)."""
        graph = self._made_graph()
        if graph is None:
            return True
        built = self.stage_graph()
        return (set(graph.nodes) == set(built.nodes)
                and {(u, v): d for u, v, d in graph.edges(data=True)}
                == {(u, v): d for u, v, d in built.edges(data=True)})

    def copy(self) -> Pipeline:
        """A copy with the same stages and graph (and a new name)."""
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied.name = str(uuid.uuid4())
        copied.tasks = [list(stage) for stage in self.tasks]
        graph = self._made_graph()
        copied.graph = None if graph is None else graph.copy()
        return copied

    def __copy__(self) -> Pipeline:
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

    def __str__(self) -> str:
        return f"Pipeline({self.name}): {self.tasks}"

    def __repr__(self) -> str:
        return str(self)


class CyclePipeline(Pipeline):
    """
    A Pipeline run several times: after its last stage it starts again from the first,
    ``cycles`` times in all, or until stopped (cancelled, or its time limit) when ``cycles``
    is None. It runs as an execution graph (stages joined by synchronisation points, a
    weak edge back to the start), so its results are netunicorn's graph shape: task name ->
    list of Results, one per cycle.
    """

    def __init__(
        self,
        cycles: int | None = None,
        tasks: Iterable[PipelineElement] = (),
        early_stopping: bool = True,
        report_results: bool = True,
        environment_definition: EnvironmentDefinition | None = None,
        name: str | None = None,
    ) -> None:
        if cycles is not None and (isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1):
            raise ValueError(f"cycles must be a positive integer or None (until stopped), got {cycles!r}")
        self.cycles = cycles
        super().__init__(tasks, early_stopping, report_results, environment_definition, name)

    def then(self, element: PipelineElement) -> Pipeline:
        """Add a stage; the edge back to 'root' moves to follow it (as netunicorn's does)."""
        if self.graph.has_edge(self.last_stage, "root"):
            self.graph.remove_edge(self.last_stage, "root")
        super().then(element)
        back = self._back_edge()
        if back is not None:
            self.graph.add_edge(self.last_stage, "root", **back)
        return self

    def _back_edge(self) -> dict[str, str | int] | None:
        """The weak edge from the last stage back to 'root' (none when it runs once)."""
        if self.cycles is None:
            return {"type": "weak"}
        return {"type": "weak", "counter": self.cycles - 1} if self.cycles > 1 else None

    def stage_graph(self) -> DiGraph:
        graph = super().stage_graph()
        back = self._back_edge()
        if self.tasks and back is not None:
            graph.add_edge(len(self.tasks), "root", **back)
        return graph

    def execution_graph(self) -> ExecutionGraph:
        """The equivalent graph: root -> stage 1 -> point 1 -> ... -> point n -weak-> root."""
        graph = ExecutionGraph(self.early_stopping, self.report_results, self.environment_definition, self.name)
        graph.graph = self.stage_graph()
        return graph

    def __str__(self) -> str:
        return f"CyclePipeline({self.name}, cycles={self.cycles}): {self.tasks}"


def as_graph(pipeline: object) -> ExecutionGraph | None:
    """The execution graph a flow runs as, or None for a Pipeline run stage by stage."""
    if isinstance(pipeline, CyclePipeline):
        return pipeline.execution_graph() if pipeline.runs_by_stages() else pipeline
    if isinstance(pipeline, Pipeline):
        return None if pipeline.runs_by_stages() else pipeline
    if isinstance(pipeline, ExecutionGraph):
        return pipeline
    return None


__all__ = ["CyclePipeline", "Pipeline", "PipelineElement", "as_graph"]
