"""What reading a run back gives: each deployment's outcome (NodeResult) and the run's (RunResults).

``NodeResult.executor_id`` names a deployment: the node's name, or ``NODE#N`` for the N-th
pipeline of a node that runs several; ``NodeResult.node`` is the node's name (its inventory host)
either way. Before this release ``node`` was the executor id and ``host`` the node's name: ``host``
is kept as a deprecated alias of ``node`` for one release, and loading a run where the two differ
(a node with several pipelines) warns once (FutureWarning) that ``node`` changed. The JSON
(``to_dict``, ``results --json``) keeps its keys: ``node`` the executor id, ``host`` where it
differs, and ``executor_id`` besides.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from ..node.shown import printable_line
from ..node.wire import JSONObject, JSONValue, Scalar
from .artifacts import Artifact
from .convert import by_name_to_json, shape_to_json
from .refused import ResultLike
from .status import NodeStatus

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from .measurements import Measurement


class Timing(TypedDict, total=False):
    """One task run's times, from its journal record (or, for a host lost, its progress report)."""

    name: str
    stage: int | None
    index: int | None
    start: float | None
    end: float | None
    kind: str | None
    log: str | None  #: inside the node's folder, or None
    preview: str | None
    extra: JSONObject  #: fields of the host's record this version does not know (see node/wire.py)


#: a task's results: Result objects (returns), Refused or Abbreviated ones in their place
ResultValue = ResultLike


@dataclass
class NodeResult:
    """The outcome of one deployment: its node's deployment, its pipeline's results, its errors."""

    #: the deployment: the node's name, or NODE#N for the N-th pipeline of a node that runs several
    executor_id: str
    status: str
    prepared: bool
    error: str | None
    #: the tutorial's shape for a Pipeline (one entry per stage); for a graph, task name -> Results
    results: list[ResultValue | list[ResultValue]] | dict[str, list[ResultValue]] = field(default_factory=list)
    tasks: dict[str, list[ResultValue]] = field(default_factory=dict)
    timings: list[Timing] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    #: when the host was lost before its results were fetched: what it reported as finished
    #: (name, type, preview of the value), from the executor's progress reports
    reported: list[JSONObject] = field(default_factory=list)
    #: the files its tasks left: brought home (``file``, relative to the run folder) or left on the host
    artifacts: list[Artifact] = field(default_factory=list)
    #: processes the node's tasks left running that were stopped when its pipeline ended (pid, command)
    stopped_processes: list[JSONObject] = field(default_factory=list)
    #: how the host ran it, if not as asked (netunicorn's default DockerImage run as ShellExecution)
    notice: str | None = None
    #: the node's name, its inventory host ("": the same as ``executor_id``)
    node: str = ""
    #: what the host's records said that this version does not know: file name -> fields
    extra: dict[str, JSONObject] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.node = self.node or self.executor_id

    @property
    def host(self) -> str:
        """Deprecated: the node's name, now :attr:`node`."""
        warnings.warn("NodeResult.host is deprecated: it is NodeResult.node (the node's name); "
                      "the executor id is NodeResult.executor_id", DeprecationWarning, stacklevel=2)
        return self.node

    @property
    def success(self) -> bool:
        return self.status == NodeStatus.OK

    def to_dict(self) -> JSONObject:
        # "host" only for a node's second and later pipelines: one pipeline per node reads as it always did
        out: JSONObject = {
            "node": self.executor_id,
            **({"host": self.node} if self.node != self.executor_id else {}),
            "executor_id": self.executor_id,
            "status": self.status,
            "prepared": self.prepared,
            "error": self.error,
            "success": self.success,
            "results": (by_name_to_json(self.results) if isinstance(self.results, dict)
                        else [shape_to_json(entry) for entry in self.results]),
            "tasks": by_name_to_json(self.tasks),
            "timings": [_timing_json(timing) for timing in self.timings],
            "not_run": list(self.not_run),
            "reported": list(self.reported),
            "artifacts": [artifact.to_dict() for artifact in self.artifacts],
            "stopped_processes": list(self.stopped_processes),
            "notice": self.notice,
        }
        if self.extra:
            extra: JSONObject = {name: fields for name, fields in self.extra.items()}
            out["extra"] = extra
        return out


def _timing_json(timing: Timing) -> JSONObject:
    return {key: value for key, value in timing.items()}  # type: ignore[misc]  # a Timing's values are JSON


_WARNED: list[bool] = []


def warn_node_changed(nodes: list[NodeResult]) -> None:
    """Once per process, where it matters (a node runs several pipelines): NodeResult.node changed."""
    changed = next((n for n in nodes if n.node != n.executor_id), None)
    if changed is None or _WARNED:
        return
    _WARNED.append(True)
    names = printable_line(f"{changed.executor_id}: {changed.node}")  # a run folder's names, shown on a terminal
    warnings.warn(f"NodeResult.node is now the node's name ({names}); the executor "
                  "id it was before is NodeResult.executor_id (NodeResult.host, the node's name, is deprecated)",
                  FutureWarning, stacklevel=3)


@dataclass
class RunResults:
    """Every node's outcome of one run; iterate it, index it by executor id (a node's name)."""

    name: str
    run_dir: Path
    nodes: list[NodeResult]
    status: str = "unknown"
    #: loaded with trust=True (every result fully, nothing refused)
    trusted: bool = False
    #: the experiment function's arguments the run was made with (``run -p``, a campaign's sweep)
    parameters: dict[str, Scalar] = field(default_factory=dict)

    def __iter__(self) -> Iterator[NodeResult]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, executor_id: str) -> NodeResult:
        for result in self.nodes:
            if result.executor_id == executor_id:
                return result
        raise KeyError(f"run {self.name} has no node {executor_id!r}; "
                       f"its nodes: {', '.join(r.executor_id for r in self.nodes)}")

    @property
    def success(self) -> bool:
        return bool(self.nodes) and all(result.success for result in self.nodes)

    def filter(self, status: str | None = None, node: str | None = None) -> list[NodeResult]:
        """The deployments with ``status``, and with ``node`` as their executor id (a node's name
        names its first pipeline, NODE#N its N-th)."""
        return [r for r in self.nodes
                if (status is None or r.status == status) and (node is None or r.executor_id == node)]

    def measurements(self) -> list[Measurement]:
        """Every number the tasks returned, one row each: node, task, repetition, field, value."""
        from .measurements import measurements

        return measurements(self)

    def to_dataframe(self) -> pandas.DataFrame:
        """:meth:`measurements` as a pandas DataFrame (needs pandas)."""
        from .measurements import measurements_frame

        return measurements_frame(self)

    def to_dict(self) -> JSONObject:
        nodes: list[JSONValue] = [result.to_dict() for result in self.nodes]
        parameters: JSONObject = dict(self.parameters)
        return {"name": self.name, "status": self.status, "success": self.success, "trusted": self.trusted,
                "parameters": parameters, "nodes": nodes}

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for result in self.nodes:
            counts[result.status] = counts.get(result.status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        trusted = " (loaded with trust: nothing refused)" if self.trusted else ""
        return f"<RunResults {self.name}: {len(self.nodes)} node(s): {summary}{trusted}>"

    def _repr_html_(self) -> str:
        """A table per node for Jupyter (ui/notebook.py: a view, with the report's colours)."""
        from ..ui.notebook import results_table

        return results_table(self)
