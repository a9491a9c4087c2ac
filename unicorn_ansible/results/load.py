"""Reading a run directory back: per-node status and results.

Each node's results come from files: ``nodes/<node>/status.json`` (written by the callback plugin
during the run) and what its host sent, unpacked from its outbox (results/outbox.py):
``state.json``, ``journal`` and ``deploy-report.json``, each read through its record
(node/wire.py), strictly: a file that is not what an executor writes refuses that node's
results, with the file and the field named, and never touches the other nodes'.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

from ..engine.rundir import RunDir, executors
from ..errors import UntrustedDataError
from ..home import runs_dir
from ..node.journal import JournalEntry, iter_records, results_by_name, results_by_stage
from ..node.protocol import DEPLOY_REPORT, JOURNAL, PIPELINE, STATE, ExecutorStatus
from ..node.wire import (
    DeployReport,
    ExecutorState,
    JSONObject,
    JSONValue,
    NodeStatusRecord,
    ReportedTask,
    RunRecord,
    TaskRecord,
    WireError,
)
from .artifacts import load_artifacts
from .convert import result_to_json
from .model import NodeResult, ResultValue, RunResults, Timing, warn_node_changed
from .outbox import ControllerWriteError, node_file, unpack_outbox
from .refused import Abbreviated, Refused
from .safe_pickle import loader_for, shipped_classes
from .status import NodeStatus, Phase

__all__ = ["VIEW_PAYLOAD_LIMIT", "NodeResult", "RunResults", "deploy_notice", "load_node", "load_results",
           "result_to_json"]

#: the command line's views (``results``, ``run``) show a result whose payload is larger than this by
#: its preview, without loading it: their memory is bounded by what they show
VIEW_PAYLOAD_LIMIT = 1024 * 1024
#: characters of a text a timing keeps (a host's record may carry more)
TIMING_CHARS = 2000

Loads = Callable[[bytes], ResultValue]


def _outcome(status: NodeStatusRecord, state: ExecutorState | None,
             records: list[JournalEntry]) -> tuple[str, str | None]:
    """The node's status word and error from the callback's status, the executor's state and its journal."""
    phase, error = status.phase, status.error
    if status.unreachable or phase == Phase.UNREACHABLE:
        return NodeStatus.UNREACHABLE, error
    if phase == Phase.DEPLOY_FAILED:
        cancelled = status.deploy is not None and status.deploy.cancelled  # a cancel stopped its deployment
        return (NodeStatus.CANCELLED if cancelled else NodeStatus.DEPLOY_FAILED), error
    executor = state.status if state is not None else None
    # a pipeline found finished is finished, whatever a stop at the time limit once said (issue 28, item 6)
    if (status.timed_out and executor != ExecutorStatus.FINISHED) or executor == ExecutorStatus.TIMED_OUT:
        done = state.done if state is not None and state.done is not None else 0
        total = state.total if state is not None and state.total is not None else "?"
        return NodeStatus.TIMED_OUT, error or (
            f"the pipeline was still running when the node's time limit was reached; "
            f"it was stopped ({done} of {total} tasks ran)")
    if state is not None and executor == ExecutorStatus.FINISHED:
        return (NodeStatus.FAILED if state.failed or state.not_run else NodeStatus.OK), error
    if executor == ExecutorStatus.CANCELLED:
        return NodeStatus.CANCELLED, error or "cancelled"
    if records or state is not None or phase in (Phase.RUNNING, Phase.EXECUTED, Phase.EXECUTION_FAILED):
        return NodeStatus.EXECUTION_FAILED, (error or (state.error if state else None)
                                             or f"executor ended: {executor or 'without a state'}")
    return NodeStatus.NOT_RUN, error


class _Unread(bytes):
    """The place of a payload left unread (over the view's limit), with its record's header."""

    header: TaskRecord

    def __new__(cls, header: TaskRecord) -> _Unread:
        unread = super().__new__(cls)
        unread.header = header
        return unread


Shape = list[ResultValue | list[ResultValue]] | dict[str, list[ResultValue]]


def _values(records: list[JournalEntry], graph: bool, loads: Loads, node: str,
            run: str) -> tuple[Shape, dict[str, list[ResultValue]]]:
    """Both shapes of the results, each payload unpickled once (a payload left unread: its preview;
    a payload the loader refuses: a :class:`Refused` in its place, alone)."""
    loaded: dict[int, ResultValue] = {}
    headers = {id(record.payload): record.header for record in records}
    records = [JournalEntry(r.header, _Unread(r.header)) if r.header.payload_len and not r.payload else r
               for r in records]

    def once(payload: bytes) -> ResultValue:
        if isinstance(payload, _Unread):
            header = payload.header
            return Abbreviated(str(header.type), (header.preview or "")[:2000], header.payload_len)
        if id(payload) not in loaded:
            try:
                loaded[id(payload)] = loads(payload)
            except UntrustedDataError as exc:
                refers_to = getattr(exc, "refers_to", None) or f"something a result may not contain ({exc})"
                loaded[id(payload)] = Refused(node, run, str(headers[id(payload)].type or "?"), refers_to)
        return loaded[id(payload)]

    by_name = results_by_name(records, once)
    # a graph (ExecutionGraph, CyclePipeline) keeps netunicorn's shape: task name -> Results
    return (by_name if graph else results_by_stage(records, once)), by_name


def _cut(text: str | None) -> str | None:
    return text[:TIMING_CHARS] if text is not None else None


def _timing(task: TaskRecord | ReportedTask, log: str | None) -> Timing:
    """A task's timing from a host (a journal record, a progress report), its texts bounded for views."""
    timing = Timing(name=task.name[:TIMING_CHARS], stage=task.stage, index=task.index, start=task.start,
                    end=task.end, kind=_cut(task.kind), log=log, preview=_cut(task.preview))
    if task.extra:  # what a newer host said that this version does not know: shown, never dropped
        timing["extra"] = dict(task.extra)
    return timing


def _refused(node: str, exc: Exception) -> NodeResult:
    return NodeResult(executor_id=node, status=NodeStatus.EXECUTION_FAILED, prepared=True,
                      error=f"the results fetched from node {node} are refused: {exc}")


def _restricted(loads: Callable[[bytes], object]) -> Loads:
    """A loader of host results, as the views read what it gives: a Result, or a stand-in for one
    (safe_pickle admits nothing else unless trusted; trusted, whatever the host sent is the user's)."""
    return cast(Loads, loads)


def load_node(run_dir: Path, node: str, loads: Loads | None = None,
              with_values: bool = True, payload_limit: int | None = None) -> NodeResult:
    """One node's outcome; its results are loaded with the untrusted-data loader unless ``loads``
    is given. Without values, only what the journal's headers say (timings, previews) is read;
    a result whose payload is over ``payload_limit`` is its preview (:class:`Abbreviated`)."""
    run = RunDir(run_dir)
    folder = run.node_dir(node)
    loads = loads or _restricted(loader_for(node))
    where = f"nodes/{node}"
    try:
        unpack_outbox(folder)
        records = list(iter_records(str(folder / JOURNAL), with_values, payload_limit, f"{where}/{JOURNAL}"))
        state = ExecutorState.read(folder / STATE, f"{where}/{STATE}")
        report = DeployReport.read(run.deploy_report_file(node), f"{where}/{DEPLOY_REPORT}")
    except (UntrustedDataError, WireError) as exc:
        return _refused(node, exc)
    except ControllerWriteError as exc:  # this machine's disk, not the host's results
        return NodeResult(executor_id=node, status=NodeStatus.EXECUTION_FAILED, prepared=True, error=str(exc))
    status = run.node_status(node)
    outcome, error = _outcome(status, state, records)
    prepared = status.prepared or bool(records) or state is not None  # results exist: the node was prepared
    # a log path from the host: kept only if it stays inside the node's folder
    timings = [_timing(r.header, r.header.log if node_file(folder, r.header.log) else None) for r in records]
    by_stage: Shape = []
    by_name: dict[str, list[ResultValue]] = {}
    if with_values:
        by_stage, by_name = _values(records, state is not None and state.shape == "graph", loads, node,
                                    _run_argument(run.path))
    reported: list[JSONObject] = []
    not_run = list(state.not_run) if state is not None else []
    finished = run.node_finished(node) if not records else ()
    if finished:
        # the host was lost before its results came back: keep what it had reported
        reported = [entry.to_json() for entry in finished]
        timings = [_timing(entry, None) for entry in finished]
        done = {entry.seq for entry in finished if entry.seq is not None}
        not_run = [name for seq, name in enumerate(_task_names(run_dir, node)) if seq not in done]
    elif state is not None and state.status == ExecutorStatus.LOST and state.shape == "stages" and not not_run:
        # the executor died (kill -9, out of memory): the tasks it never started are not run
        done = {record.header.seq for record in records}
        not_run = [name for seq, name in enumerate(_task_names(run_dir, node)) if seq not in done]
    stopped: list[JSONObject] = [{"pid": p.pid, "command": p.command}
                                 for p in (state.stopped_processes if state is not None else ())]
    return NodeResult(executor_id=node, status=outcome, prepared=prepared, error=error, results=by_stage,
                      tasks=by_name, timings=timings, not_run=not_run, reported=reported,
                      artifacts=load_artifacts(run_dir, node), stopped_processes=stopped,
                      notice=deploy_notice(status, report), extra=_extra(status, state, report))


def _extra(status: NodeStatusRecord, state: ExecutorState | None, report: DeployReport | None) -> dict[str, JSONObject]:
    """What the node's records said that this version does not know, by file (see node/wire.py)."""
    sources: dict[str, NodeStatusRecord | ExecutorState | DeployReport | None] = {
        "status.json": status, STATE: state, DEPLOY_REPORT: report}
    out: dict[str, JSONObject] = {}
    for name, record in sources.items():
        if record is not None and record.extra:
            extra: dict[str, JSONValue] = dict(record.extra)
            out[name] = extra
    return out


def deploy_notice(status: NodeStatusRecord, report: DeployReport | None) -> str | None:
    """The host's notice about its deployment (the callback's copy, else the fetched deploy report),
    as one bounded line; None if it gave none."""
    for notice in (status.deploy.notice if status.deploy else None, report.notice if report else None):
        if notice is not None and notice.strip():
            return " ".join(notice.split())[:1000]
    return None


def _run_argument(run_dir: Path) -> str:
    """How commands name this run: its name in the home folder, else its folder."""
    return run_dir.name if run_dir.resolve().parent == runs_dir().resolve() else str(run_dir)


def _unreadable(node: str, exc: Exception) -> NodeResult:
    """A node whose files could not be read at all: its error, never the other nodes' results."""
    return NodeResult(executor_id=node, status=NodeStatus.EXECUTION_FAILED, prepared=True,
                      error=f"the results of node {node} cannot be read: {type(exc).__name__}: {exc!s:.300}")


def _task_names(run_dir: Path, node: str) -> list[str]:
    """The node's task names in the order the executor numbers them (stage by stage)."""
    import cloudpickle

    path = RunDir(run_dir).shipped_dir(node) / PIPELINE
    try:
        pipeline = cloudpickle.loads(path.read_bytes())  # written by this controller
    except Exception:
        return []
    return [str(getattr(task, "name", "?")) for stage in getattr(pipeline, "tasks", []) for task in stage]


def load_results(run_dir: Path, loads: Loads | None = None,
                 with_values: bool = True, payload_limit: int | None = None, trust: bool = False) -> RunResults:
    """Every node's outcome of a run directory. Results fetched from hosts are untrusted:
    they load with the restricted loader, after the run's own pipelines told it which
    classes the experiment shipped; a result it refuses is a :class:`Refused` in its place.
    ``trust=True`` loads every result fully, for users who trust their hosts (a crafted
    result can then run code on this machine); the results say so (``trusted``). Without
    values (the report), only the journals' headers are read: memory is bounded by the
    previews, not by the results."""
    run = RunDir(run_dir)
    stored = run.record()
    record = RunRecord.from_untrusted(stored, str(run.record_file), lenient=True)
    classes = shipped_classes(run.shipped_pipelines())
    nodes = []
    for executor, host in executors(stored).items():  # each an id that names a folder: else a RunError
        try:
            node = load_node(run.path, executor, loads or _restricted(loader_for(executor, trust, classes)), with_values,
                             payload_limit)
        except Exception as exc:  # anything else a host's files do: that deployment's error alone
            node = _unreadable(executor, exc)
        node.node = host
        nodes.append(node)
    warn_node_changed(nodes)
    return RunResults(record.name or run.name, run.path, nodes, record.status or "unknown", trust,
                      dict(record.parameters))
