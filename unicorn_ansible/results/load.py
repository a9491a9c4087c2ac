"""Reading a run directory back: per-node status and results.

Each node's results come from files: ``nodes/<node>/status.json`` (written by
the callback plugin during the run) and ``nodes/<node>/state.json`` and
``journal`` (fetched from the host when its pipeline ended).
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from returns.pipeline import is_successful
from returns.result import Result

from ..engine.rundir import RunDir
from .safe_pickle import loader_for, register_shipped
from .status import NodeStatus, Phase
from ..node.files import copy_range, read_json
from ..node.journal import iter_records, results_by_name, results_by_stage
from ..node.outcome import bounded_repr
from ..node.protocol import FAILURE, JOURNAL, OUTBOX, PIPELINE, STATE, SUCCESS, ExecutorStatus
from ..errors import UntrustedDataError


REPR_LIMIT = 10_000


def _bounded_repr(value: Any) -> str:
    return bounded_repr(value, REPR_LIMIT)


def result_to_json(result: Any) -> Dict[str, Any]:
    """``{"type": "Success" | "Failure", "value": <JSON, or repr where not JSON>}``.

    A repr longer than 10,000 characters is cut and says how much is left out; the
    full value is in the Result objects (Python API, ``NodeResult.tasks``)."""
    if isinstance(result, Result):
        kind = SUCCESS if is_successful(result) else FAILURE
        inner = result.unwrap() if kind == SUCCESS else result.failure()
    else:
        kind, inner = SUCCESS, result
    try:
        json.dumps(inner, allow_nan=False)
        value = inner
    except (TypeError, ValueError):
        value = _bounded_repr(inner)
    return {"type": kind, "value": value}


def _shape_to_json(entry: Any) -> Any:
    if isinstance(entry, list):
        return [result_to_json(r) for r in entry]
    return result_to_json(entry)


def _by_name_to_json(results: Dict[str, List[Any]]) -> Dict[str, List[Dict[str, Any]]]:
    return {name: [result_to_json(r) for r in runs] for name, runs in results.items()}


@dataclass
class NodeResult:
    """The outcome of one node: its deployment, its pipeline's results, its errors."""

    node: str
    status: str
    prepared: bool
    error: Optional[str]
    #: the tutorial's shape for a Pipeline (one entry per stage); for a graph, task name -> Results
    results: Union[List[Any], Dict[str, List[Result]]] = field(default_factory=list)
    tasks: Dict[str, List[Result]] = field(default_factory=dict)
    timings: List[Dict[str, Any]] = field(default_factory=list)
    not_run: List[str] = field(default_factory=list)
    #: when the host was lost before its results were fetched: what it reported as finished
    #: (name, type, preview of the value), from the executor's progress reports
    reported: List[Dict[str, Any]] = field(default_factory=list)
    #: processes the node's tasks left running that were stopped when its pipeline ended (pid, command)
    stopped_processes: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.status == NodeStatus.OK

    def to_dict(self) -> Dict[str, Any]:
        return {
            "node": self.node,
            "status": self.status,
            "prepared": self.prepared,
            "error": self.error,
            "success": self.success,
            "results": (_by_name_to_json(self.results) if isinstance(self.results, dict)
                        else [_shape_to_json(entry) for entry in self.results]),
            "tasks": _by_name_to_json(self.tasks),
            "timings": self.timings,
            "not_run": self.not_run,
            "reported": self.reported,
            "stopped_processes": self.stopped_processes,
        }


@dataclass
class RunResults:
    """Every node's outcome of one run; iterate it, index it by node name."""

    name: str
    run_dir: Path
    nodes: List[NodeResult]
    status: str = "unknown"

    def __iter__(self) -> Iterator[NodeResult]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, node: str) -> NodeResult:
        for result in self.nodes:
            if result.node == node:
                return result
        raise KeyError(f"run {self.name} has no node {node!r}; its nodes: {', '.join(r.node for r in self.nodes)}")

    @property
    def success(self) -> bool:
        return bool(self.nodes) and all(result.success for result in self.nodes)

    def filter(self, status: Optional[str] = None, node: Optional[str] = None) -> List[NodeResult]:
        return [r for r in self.nodes if (status is None or r.status == status) and (node is None or r.node == node)]

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "status": self.status, "success": self.success,
                "nodes": [result.to_dict() for result in self.nodes]}

    def __repr__(self) -> str:
        counts: Dict[str, int] = {}
        for result in self.nodes:
            counts[result.status] = counts.get(result.status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        return f"<RunResults {self.name}: {len(self.nodes)} node(s): {summary}>"

    def _repr_html_(self) -> str:
        """A table per node for Jupyter: status, error, every task's result."""
        from html import escape

        colours = {"ok": "#1a7f37", "failed": "#cf222e", "unreachable": "#8250df", "cancelled": "#9a6700"}
        rows = []
        for result in self.nodes:
            colour = colours.get(result.status, "#cf222e")
            tasks = "<br>".join(
                f"<code>{escape(name)}</code>: {escape(_bounded_repr(value)[:300])}"
                for name, values in result.tasks.items() for value in values)
            rows.append(
                f"<tr><td>{escape(result.node)}</td><td style='color:{colour}'>{escape(result.status)}</td>"
                f"<td>{escape(result.error or '')}</td><td style='text-align:left'>{tasks}</td></tr>")
        return (f"<p><b>run {escape(self.name)}</b> ({escape(self.status)})</p><table><thead><tr><th>node</th>"
                f"<th>status</th><th>error</th><th>results</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


# What an outbox fetched from a host may contain: these names, as regular files, nothing else.
_OUTBOX_MEMBER = re.compile(
    r"^(journal|state\.json|deploy-report\.json|started\.json|logs/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?)$"
)


def unpack_outbox(folder: Path) -> None:
    """Unpack ``outbox.tar`` (fetched from the host) next to it, once per fetch.

    The archive is untrusted: only regular files with the names an executor writes
    are taken, each written by us under ``folder``; links, devices and other paths are
    ignored, so nothing outside the node's folder can be touched.
    """
    outbox = folder / OUTBOX
    marker = folder / ".outbox-unpacked"
    if not outbox.is_file():
        return
    if marker.exists() and marker.stat().st_mtime_ns >= outbox.stat().st_mtime_ns:
        return
    try:
        with open(outbox, "rb") as source, tarfile.open(fileobj=source, mode="r:") as archive:
            for member in archive:  # (outbox.json, the manifest, is for the fetch: not taken)
                if not member.isfile() or not _OUTBOX_MEMBER.match(member.name) or ".." in member.name.split("/"):
                    continue
                target = folder / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.tmp")
                with open(tmp, "wb", buffering=0) as handle:
                    copy_range(source.fileno(), handle.fileno(), member.size, member.offset_data)
                os.replace(tmp, target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UntrustedDataError(f"the results fetched from node {folder.name} are not a readable archive: {exc}") from exc
    marker.touch()


def load_node(run_dir: Path, node: str, loads: Optional[Callable[[bytes], Any]] = None) -> NodeResult:
    """One node's outcome; its results are loaded with the untrusted-data loader unless ``loads`` is given."""
    run = RunDir(run_dir)
    folder = run.node_dir(node)
    loads = loads or loader_for(node)
    try:
        unpack_outbox(folder)
    except UntrustedDataError as exc:
        return NodeResult(node=node, status=NodeStatus.EXECUTION_FAILED, prepared=True, error=str(exc))
    status = run.node_status(node)
    state = read_json(str(folder / STATE)) or {}
    records = list(iter_records(str(folder / JOURNAL)))
    phase = status.get("phase")
    prepared = bool(status.get("prepared"))
    error = status.get("error")
    if status.get("unreachable") or phase == Phase.UNREACHABLE:
        outcome = NodeStatus.UNREACHABLE
    elif phase == Phase.DEPLOY_FAILED and (status.get("deploy") or {}).get("cancelled"):
        outcome = NodeStatus.CANCELLED  # a cancel stopped its deployment
    elif phase == Phase.DEPLOY_FAILED:
        outcome = NodeStatus.DEPLOY_FAILED
    elif status.get("timed_out") or state.get("status") == ExecutorStatus.TIMED_OUT:
        outcome = NodeStatus.TIMED_OUT
        error = error or (f"the pipeline was still running when the node's time limit was reached; "
                          f"it was stopped ({state.get('done', 0)} of {state.get('total', '?')} tasks ran)")
    elif state.get("status") == ExecutorStatus.FINISHED:
        outcome = NodeStatus.FAILED if state.get("failed") or state.get("not_run") else NodeStatus.OK
    elif state.get("status") == ExecutorStatus.CANCELLED and not status.get("timed_out"):
        outcome = NodeStatus.CANCELLED
        error = error or "cancelled"
    elif records or state or phase in (Phase.RUNNING, Phase.EXECUTED, Phase.EXECUTION_FAILED):
        outcome = NodeStatus.EXECUTION_FAILED
        error = error or state.get("error") or f"executor ended: {state.get('status', 'without a state')}"
    else:
        outcome = NodeStatus.NOT_RUN
    prepared = prepared or bool(records or state)  # results exist: the node was prepared
    timings = [{k: r.header.get(k) for k in ("name", "stage", "index", "start", "end", "kind", "log")} for r in records]
    try:
        loaded: Dict[int, Any] = {}  # each payload unpickled once, for both shapes

        def once(payload: bytes) -> Any:
            if id(payload) not in loaded:
                loaded[id(payload)] = loads(payload)
            return loaded[id(payload)]

        by_name = results_by_name(records, once)
        # a graph (ExecutionGraph, CyclePipeline) keeps netunicorn's shape: task name -> Results
        by_stage = by_name if state.get("shape") == "graph" else results_by_stage(records, once)
    except UntrustedDataError as exc:
        by_stage, by_name = [], {}
        outcome, error = NodeStatus.EXECUTION_FAILED, str(exc)
    reported: List[Dict[str, Any]] = []
    not_run = list(state.get("not_run", []))
    if not records and status.get("finished"):
        # the host was lost before its results came back: keep what it had reported
        reported = list(status["finished"])
        timings = [{k: entry.get(k) for k in ("name", "stage", "index", "start", "end", "kind", "preview")}
                   for entry in reported]
        done = {entry.get("seq") for entry in reported}
        not_run = [name for seq, name in enumerate(_task_names(run_dir, node)) if seq not in done]
    return NodeResult(
        node=node,
        status=outcome,
        prepared=prepared,
        error=error,
        results=by_stage,
        tasks=by_name,
        timings=timings,
        not_run=not_run,
        reported=reported,
        stopped_processes=_stopped_processes(state),
    )


def _stopped_processes(state: Dict[str, Any]) -> List[Dict[str, Any]]:
    """What the node says it stopped at its pipeline's end (untrusted: bounded, plain values only)."""
    entries = state.get("stopped_processes")
    if not isinstance(entries, list):
        return []
    return [{"pid": entry.get("pid") if isinstance(entry.get("pid"), int) else None,
             "command": str(entry.get("command", ""))[:200]}
            for entry in entries[:1000] if isinstance(entry, dict)]


def _task_names(run_dir: Path, node: str) -> List[str]:
    """The node's task names in the order the executor numbers them (stage by stage)."""
    import cloudpickle

    path = RunDir(run_dir).shipped_dir(node) / PIPELINE
    try:
        pipeline = cloudpickle.loads(path.read_bytes())  # written by this controller
    except Exception:
        return []
    return [str(getattr(task, "name", "?")) for stage in getattr(pipeline, "tasks", []) for task in stage]


def load_results(run_dir: Path, loads: Optional[Callable[[bytes], Any]] = None) -> RunResults:
    """Every node's outcome of a run directory. Results fetched from hosts are untrusted:
    they load with the restricted loader, after the run's own pipelines told it which
    classes the experiment shipped."""
    run = RunDir(run_dir)
    record = run.record()
    register_shipped(run.shipped_pipelines())
    nodes = [load_node(run.path, host, loads) for host in record.get("hosts", [])]
    return RunResults(record.get("name", run.name), run.path, nodes, record.get("status", "unknown"))
