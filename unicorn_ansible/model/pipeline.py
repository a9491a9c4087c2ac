"""Pipelines: stages of tasks, run in order; the tasks of one stage run in parallel."""

from __future__ import annotations

import uuid
import warnings
from typing import Collection, Iterable, List, Optional, Union

from .environment import EnvironmentDefinition, ShellExecution
from .task import TaskElement

PipelineElement = Union[TaskElement, Collection[TaskElement]]


class Flow:
    """What every pipeline and execution graph has: a name, early stopping, whether results
    are reported, and the environment its tasks' requirements run in (ShellExecution by default)."""

    def __init__(
        self,
        early_stopping: bool = True,
        report_results: bool = True,
        environment_definition: Optional[EnvironmentDefinition] = None,
        name: Optional[str] = None,
    ) -> None:
        self.name: str = name or str(uuid.uuid4())
        self.early_stopping = early_stopping
        self.report_results = report_results
        self.environment_definition: EnvironmentDefinition = (
            environment_definition if environment_definition is not None else ShellExecution()
        )
        #: paths or glob patterns of files the whole pipeline leaves (see Task.artifacts)
        self.artifacts: List[str] = []


class Pipeline(Flow):
    """
    Pipeline is a class that takes a sequence of Tasks and executes them in order.
    Each element should be either a Task (or TaskDispatcher) or a collection of them:
    a list, tuple or set is one stage whose tasks are executed in parallel.

    The result of pipeline execution is a Success if all tasks succeed, a Failure otherwise.
    If early_stopping is True (the default), no stage starts after a stage in which a task failed.
    """

    def __init__(
        self,
        tasks: Iterable[PipelineElement] = (),
        early_stopping: bool = True,
        report_results: bool = True,
        environment_definition: Optional[EnvironmentDefinition] = None,
        name: Optional[str] = None,
        artifacts: Iterable[str] = (),
    ) -> None:
        super().__init__(early_stopping, report_results, environment_definition, name)
        self.artifacts = [str(pattern) for pattern in artifacts]
        self.tasks: List[List[TaskElement]] = []
        for element in tasks:
            self.then(element)

    def then(self, element: PipelineElement) -> "Pipeline":
        """Add a task, or a list/tuple/set of tasks run in parallel, as the next stage; returns self."""
        stage = list(element) if isinstance(element, (list, tuple, set, frozenset)) else [element]
        if not stage:
            raise ValueError(f"{self}: a stage needs at least one task, got an empty {type(element).__name__}")
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
                    stacklevel=2,
                )
            known.add(task.name)
        self.tasks.append(stage)
        return self

    def __str__(self) -> str:
        return f"Pipeline({self.name}): {self.tasks}"

    def __repr__(self) -> str:
        return str(self)
