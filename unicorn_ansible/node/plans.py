"""What to run next: a pipeline's stages or a graph's vertices, as one interface.

The executor's loop asks a plan for the tasks to start first, tells it each task
that ended, and gets back the tasks to start then. A plan never runs anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from .outcome import Runnable


class Stages(Protocol):
    """A Pipeline (ours or netunicorn's): its stages of tasks."""

    tasks: Sequence[Sequence[Runnable]]


class Graph(Protocol):
    """An ExecutionGraph or CyclePipeline as a plan: its vertices (tasks and synchronisation points)
    and its edges (from, to, attributes: type, traverse_on, counter)."""

    vertices: Iterable[object]
    edges: Iterable[tuple[int, int, Mapping[str, object]]]


@dataclass(frozen=True)
class TaskSlot:
    """A task to run and its place: stage number, index in the stage (a graph: vertex), stage size."""

    task: Runnable
    stage: int
    index: int
    stage_size: int


class StagePlan:
    """A Pipeline: stages in order, the tasks of a stage in parallel; with early stopping,
    no stage starts after one with a failed task."""

    shape = "stages"

    def __init__(self, pipeline: Stages) -> None:
        self.stages: list[list[Runnable]] = [list(stage) for stage in pipeline.tasks]
        self.early_stopping = bool(getattr(pipeline, "early_stopping", True))
        self.total = sum(len(stage) for stage in self.stages)
        self.stopped: str | None = None  # why no task starts any more
        self.current = -1
        self._left = 0
        self._stage_ok = True

    def first(self) -> list[TaskSlot]:
        return self._next_stage()

    def ended(self, slot: TaskSlot, ok: bool) -> list[TaskSlot]:
        """Record that ``slot`` ended; the next stage's tasks once its stage is over."""
        self._left -= 1
        self._stage_ok = self._stage_ok and ok
        if self._left > 0:
            return []
        if not self._stage_ok and self.early_stopping:
            self.stopped = f"stage {self.current + 1} failed; early stopping: no later stage starts"
            return []
        return self._next_stage()

    def _next_stage(self) -> list[TaskSlot]:
        self.current += 1
        if self.current >= len(self.stages):
            return []
        stage = self.stages[self.current]
        self._left, self._stage_ok = len(stage), True
        return [TaskSlot(task, self.current, index, len(stage)) for index, task in enumerate(stage)]

    def finish(self) -> None:
        """Nothing to conclude: a stage plan cannot deadlock."""

    def not_run(self, started: int, interrupted: bool) -> list[str]:
        """Tasks that never started: all after the first ``started`` (tasks are numbered in order)."""
        return [str(getattr(task, "name", "?")) for stage in self.stages for task in stage][started:]


class GraphPlan:
    """Walks a graph plan with netunicorn's rules (see ``unicorn_ansible.ExecutionGraph``).

    A vertex becomes *waiting* when an edge to it is traversed, and starts when none of its
    strong predecessors is still to run: each finished at least once and none is waiting
    or running again. A synchronisation point passes at once; a task starts a process."""

    shape = "graph"
    stages: list[list[Runnable]] = []

    def __init__(self, plan: Graph) -> None:
        self.vertices: list[object] = list(plan.vertices)
        self.early_stopping = bool(getattr(plan, "early_stopping", True))
        self.successors: dict[int, list[tuple[int, dict[str, object]]]] = {i: [] for i in range(len(self.vertices))}
        self.strong: dict[int, list[int]] = {i: [] for i in range(len(self.vertices))}
        for u, v, attributes in plan.edges:
            self.successors[u].append((v, dict(attributes)))
            if attributes.get("type", "strong") != "weak":
                self.strong[v].append(u)
        self.total = sum(1 for vertex in range(len(self.vertices)) if self.is_task(vertex))
        self.waiting: list[int] = [0]  # vertex 0 is "root"
        self.active: set[int] = set()
        self.finished: set[int] = set()
        self.runs: dict[int, int] = {}
        self.stopped: str | None = None  # why no task starts any more

    def is_task(self, vertex: int) -> bool:
        return hasattr(self.vertices[vertex], "run")

    def name(self, vertex: int) -> str:
        item = self.vertices[vertex]
        return str(getattr(item, "name", item))

    def first(self) -> list[TaskSlot]:
        return self._slots(self.ready())

    def ended(self, slot: TaskSlot, ok: bool) -> list[TaskSlot]:
        vertex = slot.index
        self.active.discard(vertex)
        self.finished.add(vertex)
        self.runs[vertex] = self.runs.get(vertex, 0) + 1
        self.traverse(vertex, ok)
        return self._slots(self.ready())

    def _slots(self, vertices: list[int]) -> list[TaskSlot]:
        return [TaskSlot(cast(Runnable, self.vertices[v]), 0, v, 1) for v in vertices]  # tasks: they have run()

    def traverse(self, vertex: int, ok: bool | None) -> None:
        """Follow the edges leaving ``vertex`` after it ended (ok None: a synchronisation point)."""
        followed = False
        for edge in list(self.successors[vertex]):
            target, attributes = edge
            when = attributes.get("traverse_on") or ("success" if self.early_stopping else "any")
            if not (ok is None or when == "any" or (when == "success") == ok):
                continue
            followed = True
            if target not in self.waiting:
                self.waiting.append(target)
            counter = attributes.get("counter")
            if isinstance(counter, int):
                attributes["counter"] = counter - 1
                if counter - 1 <= 0:
                    self.successors[vertex].remove(edge)
        if ok is False and self.early_stopping and not followed:
            self.stopped = f"task {self.name(vertex)} failed; early stopping: no task starts after it"

    def _blocked(self, vertex: int) -> bool:
        return vertex in self.active or any(
            u not in self.finished or u in self.active or u in self.waiting for u in self.strong[vertex])

    def ready(self) -> list[int]:
        """Tasks to start now; synchronisation points on the way are passed."""
        start: list[int] = []
        passes = 0
        progressed = True
        while progressed and self.stopped is None:
            progressed = False
            for vertex in list(self.waiting):
                if self._blocked(vertex):
                    continue
                self.waiting.remove(vertex)
                progressed = True
                if self.is_task(vertex):
                    self.active.add(vertex)
                    start.append(vertex)
                    continue
                passes += 1
                if passes > 100000:
                    self.stopped = "the graph loops through synchronisation points without a task to run"
                    break
                self.finished.add(vertex)
                self.traverse(vertex, None)
        return start

    def deadlocked(self) -> list[int]:
        """Vertices left waiting when nothing runs: their strong predecessors never ran."""
        return list(self.waiting) if self.stopped is None and not self.active else []

    def finish(self) -> None:
        """After the last task ended: a vertex still waiting is a deadlock."""
        stuck = self.deadlocked()
        if stuck:
            self.stopped = ("deadlock: " + ", ".join(self.name(v) for v in stuck) +
                            " wait(s) for strong predecessors that never ran; make those edges weak")

    def not_run(self, started: int, interrupted: bool) -> list[str]:
        """Tasks that never ran, when the graph stopped early or was interrupted."""
        if not (self.stopped or interrupted):
            return []
        return [self.name(v) for v in range(len(self.vertices)) if self.is_task(v) and v not in self.runs]


def plan_for(pipeline: object) -> StagePlan | GraphPlan:
    """The plan of a Pipeline (stages) or of a graph (ExecutionGraph, CyclePipeline: vertices)."""
    if hasattr(pipeline, "vertices"):
        return GraphPlan(pipeline)  # type: ignore[arg-type]  # a graph: it has vertices and edges
    return StagePlan(pipeline)  # type: ignore[arg-type]  # a pipeline: it has stages of tasks
