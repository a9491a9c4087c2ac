"""Reading a run directory back: per-node status and results.

Each node's results come from files: ``nodes/<node>/status.json`` (written by
the callback plugin during the run) and ``nodes/<node>/state.json`` and
``journal`` (fetched from the host when its pipeline ended).
"""

from __future__ import annotations

import json
import math
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from returns.pipeline import is_successful
from returns.primitives.exceptions import UnwrapFailedError
from returns.result import Result

from ..engine.rundir import RunDir, atomic_file, executors, read_json
from ..errors import UntrustedDataError
from ..home import private_files, runs_dir
from ..node.files import copy_range
from ..node.journal import MalformedRecord, Record, iter_records, results_by_name, results_by_stage
from ..node.outcome import bounded_repr
from ..node.protocol import FAILURE, JOURNAL, OUTBOX, PIPELINE, STATE, SUCCESS, ExecutorStatus
from .artifacts import Artifact, load_artifacts
from .refused import Refused
from .safe_pickle import loader_for, shipped_classes
from .status import STATUS_COLOURS, NodeStatus, Phase

REPR_LIMIT = 10_000


def _bounded_repr(value: Any) -> str:
    return bounded_repr(value, REPR_LIMIT)


#: the command line's views (``results``, ``run``) show a result whose payload is larger than this by
#: its preview, without loading it: their memory is bounded by what they show
VIEW_PAYLOAD_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Abbreviated:
    """A result not loaded for a view (its payload is over :data:`VIEW_PAYLOAD_LIMIT`): its preview."""

    type: str
    preview: str
    size: int

    def __repr__(self) -> str:
        return f"{self.preview} ({self.size} bytes; the whole value: load_results in Python)"

    # read as the Result it stands for (is_successful, unwrap, failure), its value a preview (a string)
    def _value(self) -> str:
        text = self.preview.removeprefix(f"<{self.type}: ")
        return text[:-1] if text != self.preview and text.endswith(">") else text

    def unwrap(self) -> Any:
        if self.type != SUCCESS:
            raise UnwrapFailedError(self)  # type: ignore[arg-type]
        return self._value()

    def failure(self) -> Any:
        if self.type == SUCCESS:
            raise UnwrapFailedError(self)  # type: ignore[arg-type]
        return self._value()

    def value_or(self, default: Any) -> Any:
        return self._value() if self.type == SUCCESS else default


def result_to_json(result: Any) -> dict[str, Any]:
    """``{"type": "Success" | "Failure", "value": <JSON, or repr where not JSON>}``.

    A repr longer than 10,000 characters is cut and says how much is left out; the
    full value is in the Result objects (Python API, ``NodeResult.tasks``). A result
    not loaded for a view is its preview, with ``"abbreviated": <payload bytes>``."""
    if isinstance(result, Abbreviated):
        return {"type": result.type, "value": result.preview, "abbreviated": result.size}
    if isinstance(result, Refused):
        return result.to_json()
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


def _by_name_to_json(results: dict[str, list[Any]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [result_to_json(r) for r in runs] for name, runs in results.items()}


@dataclass
class NodeResult:
    """The outcome of one deployment: its node's deployment, its pipeline's results, its errors.

    ``node`` names the deployment: the node's name, or ``NODE#N`` for the N-th pipeline of a node
    that runs several (its executor id); ``host`` is the node's name either way."""

    node: str
    status: str
    prepared: bool
    error: str | None
    #: the tutorial's shape for a Pipeline (one entry per stage); for a graph, task name -> Results
    results: list[Any] | dict[str, list[Result]] = field(default_factory=list)
    tasks: dict[str, list[Result]] = field(default_factory=dict)
    timings: list[dict[str, Any]] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    #: when the host was lost before its results were fetched: what it reported as finished
    #: (name, type, preview of the value), from the executor's progress reports
    reported: list[dict[str, Any]] = field(default_factory=list)
    #: the files its tasks left: brought home (``file``, relative to the run folder) or left on the host
    artifacts: list[Artifact] = field(default_factory=list)
    #: processes the node's tasks left running that were stopped when its pipeline ended (pid, command)
    stopped_processes: list[dict[str, Any]] = field(default_factory=list)
    #: how the host ran it, if not as asked (netunicorn's default DockerImage run as ShellExecution)
    notice: str | None = None
    #: the inventory host it ran on ("": the same as ``node``)
    host: str = ""

    def __post_init__(self) -> None:
        self.host = self.host or self.node

    @property
    def success(self) -> bool:
        return self.status == NodeStatus.OK

    def to_dict(self) -> dict[str, Any]:
        # "host" only for a node's second and later pipelines: one pipeline per node reads as it always did
        return {
            "node": self.node,
            **({"host": self.host} if self.host != self.node else {}),
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
            "artifacts": [artifact.to_dict() for artifact in self.artifacts],
            "stopped_processes": self.stopped_processes,
            "notice": self.notice,
        }


@dataclass
class RunResults:
    """Every node's outcome of one run; iterate it, index it by node name."""

    name: str
    run_dir: Path
    nodes: list[NodeResult]
    status: str = "unknown"
    #: loaded with trust=True (every result fully, nothing refused)
    trusted: bool = False
    #: the experiment function's arguments the run was made with (``run -p``, a campaign's sweep)
    parameters: dict[str, Any] = field(default_factory=dict)

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

    def filter(self, status: str | None = None, node: str | None = None) -> list[NodeResult]:
        return [r for r in self.nodes if (status is None or r.status == status) and (node is None or r.node == node)]

    def measurements(self) -> list[dict[str, Any]]:
        """Every number the tasks returned, one row each: node, task, repetition, field, value."""
        from .measurements import measurements

        return measurements(self)

    def to_dataframe(self) -> Any:
        """:meth:`measurements` as a pandas DataFrame (needs pandas)."""
        from .measurements import measurements_frame

        return measurements_frame(self)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "success": self.success, "trusted": self.trusted,
                "parameters": self.parameters, "nodes": [result.to_dict() for result in self.nodes]}

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for result in self.nodes:
            counts[result.status] = counts.get(result.status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        trusted = " (loaded with trust: nothing refused)" if self.trusted else ""
        return f"<RunResults {self.name}: {len(self.nodes)} node(s): {summary}{trusted}>"

    def _repr_html_(self) -> str:
        """A table per node for Jupyter: status, error, every task's result."""
        from html import escape

        rows = []
        for result in self.nodes:
            colour = STATUS_COLOURS.get(result.status, "#cf222e")
            tasks = "<br>".join(
                f"<code>{escape(name)}</code>: {escape(_bounded_repr(value)[:300])}"
                for name, values in result.tasks.items() for value in values)
            rows.append(
                f"<tr><td>{escape(result.node)}</td><td style='color:{colour}'>{escape(result.status)}</td>"
                f"<td>{escape(result.error or '')}{_notice_html(result.notice)}</td>"
                f"<td style='text-align:left'>{tasks}</td></tr>")
        return (f"<p><b>run {escape(self.name)}</b> ({escape(self.status)})</p><table><thead><tr><th>node</th>"
                f"<th>status</th><th>error</th><th>results</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _notice_html(notice: str | None) -> str:
    from html import escape

    return f"<br><i>notice: {escape(notice)}</i>" if notice else ""


# What an outbox fetched from a host may contain: these names, as regular files, nothing else.
_OUTBOX_MEMBER = re.compile(
    r"^(journal|state\.json|deploy-report\.json|started\.json|artifacts\.json|logs/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?)$"
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
        with private_files(), open(outbox, "rb") as source, tarfile.open(fileobj=source, mode="r:") as archive:
            for member in archive:  # (outbox.json, the manifest, is for the fetch: not taken)
                if not member.isfile() or not _OUTBOX_MEMBER.match(member.name) or ".." in member.name.split("/"):
                    continue
                target = folder / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_file(target) as handle:
                    copy_range(source.fileno(), handle.fileno(), member.size, member.offset_data)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UntrustedDataError(f"the results fetched from node {folder.name} are not a readable archive: {exc}") from exc
    with private_files():
        marker.touch()


def node_file(folder: Path, relative: Any) -> Path | None:
    """A path a host named (a log), inside the node's folder; None for anything else
    (absolute, ``..``, a link out of it, not a text)."""
    if not isinstance(relative, str) or not relative or relative.startswith("/") or "\0" in relative:
        return None
    root = folder.resolve()
    path = (folder / relative).resolve()
    return path if path.is_relative_to(root) and path != root else None


_STATE_TYPES = {"status": str, "error": str, "shape": str, "done": int, "total": int, "failed": int}


def host_state(folder: Path) -> dict[str, Any]:
    """The executor's state.json (from the host): fields of the wrong type are left out."""
    state = read_json(folder / STATE)
    if not isinstance(state, dict):
        return {}
    kept = {k: v for k, v in state.items() if k in _STATE_TYPES and type(v) is _STATE_TYPES[k]}
    not_run = state.get("not_run")
    if isinstance(not_run, list):
        kept["not_run"] = [str(name)[:200] for name in not_run[:100_000]]
    stopped = state.get("stopped_processes")
    if isinstance(stopped, list):  # checked entry by entry in _stopped_processes
        kept["stopped_processes"] = stopped[:1000]
    return kept


def _outcome(status: dict[str, Any], state: dict[str, Any], records: list[Any]) -> tuple[str, str | None]:
    """The node's status word and error from the callback's status, the executor's state and its journal."""
    phase = status.get("phase")
    error = status.get("error")
    if status.get("unreachable") or phase == Phase.UNREACHABLE:
        return NodeStatus.UNREACHABLE, error
    if phase == Phase.DEPLOY_FAILED:
        deploy = status.get("deploy")
        cancelled = isinstance(deploy, dict) and deploy.get("cancelled")  # a cancel stopped its deployment
        return (NodeStatus.CANCELLED if cancelled else NodeStatus.DEPLOY_FAILED), error
    if status.get("timed_out") or state.get("status") == ExecutorStatus.TIMED_OUT:
        return NodeStatus.TIMED_OUT, error or (
            f"the pipeline was still running when the node's time limit was reached; "
            f"it was stopped ({state.get('done', 0)} of {state.get('total', '?')} tasks ran)")
    if state.get("status") == ExecutorStatus.FINISHED:
        return (NodeStatus.FAILED if state.get("failed") or state.get("not_run") else NodeStatus.OK), error
    if state.get("status") == ExecutorStatus.CANCELLED:
        return NodeStatus.CANCELLED, error or "cancelled"
    if records or state or phase in (Phase.RUNNING, Phase.EXECUTED, Phase.EXECUTION_FAILED):
        return NodeStatus.EXECUTION_FAILED, (error or state.get("error")
                                             or f"executor ended: {state.get('status', 'without a state')}")
    return NodeStatus.NOT_RUN, error


class _Unread(bytes):
    """The place of a payload left unread (over the view's limit), with its record's header."""

    header: dict[str, Any]

    def __new__(cls, header: dict[str, Any]) -> _Unread:
        unread = super().__new__(cls)
        unread.header = header
        return unread


def _values(records: list[Any], graph: bool, loads: Callable[[bytes], Any], node: str,
            run: str) -> tuple[Any, dict[str, list[Any]]]:
    """Both shapes of the results, each payload unpickled once (a payload left unread: its preview;
    a payload the loader refuses: a :class:`Refused` in its place, alone)."""
    loaded: dict[int, Any] = {}
    headers = {id(record.payload): record.header for record in records}
    records = [Record(r.header, _Unread(r.header)) if r.header["payload_len"] and not r.payload else r
               for r in records]

    def once(payload: bytes) -> Any:
        if isinstance(payload, _Unread):
            header = payload.header
            return Abbreviated(str(header.get("type")), str(header.get("preview") or "")[:2000], header["payload_len"])
        if id(payload) not in loaded:
            try:
                loaded[id(payload)] = loads(payload)
            except UntrustedDataError as exc:
                refers_to = getattr(exc, "refers_to", None) or f"something a result may not contain ({exc})"
                loaded[id(payload)] = Refused(node, run, str(headers[id(payload)].get("type", "?")), refers_to)
        return loaded[id(payload)]

    by_name = results_by_name(records, once)
    # a graph (ExecutionGraph, CyclePipeline) keeps netunicorn's shape: task name -> Results
    return (by_name if graph else results_by_stage(records, once)), by_name


_TIMING_TYPES: dict[str, tuple] = {"name": (str,), "stage": (int,), "index": (int,), "start": (int, float),
                                    "end": (int, float), "kind": (str,), "log": (str,), "preview": (str,)}


def _timing(entry: dict[str, Any]) -> dict[str, Any]:
    """A task's timing from a host (a journal header, a progress report): fields of another type are None."""
    timing = {}
    for key, kinds in _TIMING_TYPES.items():
        value = entry.get(key)
        ok = type(value) in kinds and (not isinstance(value, float) or math.isfinite(value))
        timing[key] = (value[:2000] if isinstance(value, str) else value) if ok else None
    timing["name"] = timing["name"] if timing["name"] is not None else "?"
    return timing


def load_node(run_dir: Path, node: str, loads: Callable[[bytes], Any] | None = None,
              with_values: bool = True, payload_limit: int | None = None) -> NodeResult:
    """One node's outcome; its results are loaded with the untrusted-data loader unless ``loads``
    is given. Without values, only what the journal's headers say (timings, previews) is read;
    a result whose payload is over ``payload_limit`` is its preview (:class:`Abbreviated`)."""
    run = RunDir(run_dir)
    folder = run.node_dir(node)
    loads = loads or loader_for(node)
    try:
        unpack_outbox(folder)
        records = list(iter_records(str(folder / JOURNAL), with_values, payload_limit))
    except (UntrustedDataError, MalformedRecord) as exc:
        return NodeResult(node=node, status=NodeStatus.EXECUTION_FAILED, prepared=True,
                          error=f"the results fetched from node {node} are refused: {exc}")
    status = run.node_status(node)
    state = host_state(folder)
    outcome, error = _outcome(status, state, records)
    prepared = bool(status.get("prepared")) or bool(records or state)  # results exist: the node was prepared
    timings = [_timing(r.header) for r in records]
    for timing in timings:  # a log path from the host: kept only if it stays inside the node's folder
        timing["log"] = timing["log"] if node_file(folder, timing["log"]) else None
    by_stage: Any = []
    by_name: dict[str, list[Any]] = {}
    if with_values:
        by_stage, by_name = _values(records, state.get("shape") == "graph", loads, node, _run_argument(run.path))
    reported: list[dict[str, Any]] = []
    not_run = list(state.get("not_run", []))
    if not records and isinstance(status.get("finished"), list):
        # the host was lost before its results came back: keep what it had reported
        reported = [entry for entry in status["finished"] if isinstance(entry, dict)]
        timings = [dict(_timing(entry), log=None) for entry in reported]
        done = {entry.get("seq") for entry in reported if type(entry.get("seq")) is int}
        not_run = [name for seq, name in enumerate(_task_names(run_dir, node)) if seq not in done]
    return NodeResult(node=node, status=outcome, prepared=prepared, error=error, results=by_stage, tasks=by_name,
                      timings=timings, not_run=not_run, reported=reported,
                      artifacts=load_artifacts(run_dir, node), stopped_processes=_stopped_processes(state),
                      notice=deploy_notice(status, run.deploy_report(node)))


def deploy_notice(status: dict[str, Any], report: dict[str, Any]) -> str | None:
    """The host's notice about its deployment (the callback's copy, else the fetched deploy report),
    as one bounded line; None if it gave none or something other than a text."""
    for source in (status.get("deploy"), report):
        notice = source.get("notice") if isinstance(source, dict) else None
        if isinstance(notice, str) and notice.strip():
            return " ".join(notice.split())[:1000]
    return None


def _run_argument(run_dir: Path) -> str:
    """How commands name this run: its name in the home folder, else its folder."""
    return run_dir.name if run_dir.resolve().parent == runs_dir().resolve() else str(run_dir)


def _unreadable(node: str, exc: Exception) -> NodeResult:
    """A node whose files could not be read at all: its error, never the other nodes' results."""
    return NodeResult(node=node, status=NodeStatus.EXECUTION_FAILED, prepared=True,
                      error=f"the results of node {node} cannot be read: {type(exc).__name__}: {exc!s:.300}")


def _stopped_processes(state: dict[str, Any]) -> list[dict[str, Any]]:
    """What the node says it stopped at its pipeline's end (untrusted: bounded, plain values only)."""
    entries = state.get("stopped_processes")
    if not isinstance(entries, list):
        return []
    return [{"pid": entry.get("pid") if isinstance(entry.get("pid"), int) else None,
             "command": str(entry.get("command", ""))[:200]}
            for entry in entries[:1000] if isinstance(entry, dict)]


def _task_names(run_dir: Path, node: str) -> list[str]:
    """The node's task names in the order the executor numbers them (stage by stage)."""
    import cloudpickle

    path = RunDir(run_dir).shipped_dir(node) / PIPELINE
    try:
        pipeline = cloudpickle.loads(path.read_bytes())  # written by this controller
    except Exception:
        return []
    return [str(getattr(task, "name", "?")) for stage in getattr(pipeline, "tasks", []) for task in stage]


def load_results(run_dir: Path, loads: Callable[[bytes], Any] | None = None,
                 with_values: bool = True, payload_limit: int | None = None, trust: bool = False) -> RunResults:
    """Every node's outcome of a run directory. Results fetched from hosts are untrusted:
    they load with the restricted loader, after the run's own pipelines told it which
    classes the experiment shipped; a result it refuses is a :class:`Refused` in its place.
    ``trust=True`` loads every result fully, for users who trust their hosts (a crafted
    result can then run code on this machine); the results say so (``trusted``). Without
    values (the report), only the journals' headers are read: memory is bounded by the
    previews, not by the results."""
    run = RunDir(run_dir)
    record = run.record()
    classes = shipped_classes(run.shipped_pipelines())
    nodes = []
    for executor, host in executors(record).items():
        try:
            node = load_node(run.path, executor, loads or loader_for(executor, trust, classes), with_values,
                             payload_limit)
        except Exception as exc:  # anything else a host's files do: that deployment's error alone
            node = _unreadable(executor, exc)
        node.host = host
        nodes.append(node)
    parameters = record.get("parameters")
    return RunResults(record.get("name", run.name), run.path, nodes, record.get("status", "unknown"), trust,
                      parameters if isinstance(parameters, dict) else {})
