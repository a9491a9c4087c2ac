"""The node-side executor of unicorn-ansible.

This one file is what runs on every host. It imports nothing but the standard
library, cloudpickle and returns, so the bundle the execution play copies to a
host (``unicorn-executor.pyz``: this file plus those two libraries) needs only
a Python of the controller's major.minor version.

Commands (``python unicorn-executor.pyz COMMAND --workdir DIR``):

``deploy``
    Prepare the node's environment from ``DIR/deploy.json``: check the Python
    version, create a virtual environment, run every requirement in order with
    ``/bin/sh`` inside it, stop at the first failing one. Skipped when the host
    already has exactly that environment. Writes ``DIR/deploy-report.json``.
``start``
    Start ``run`` detached from the SSH session (its own session, stdio to
    files), unless this work folder already has an executor started.
``wait``
    Block until the executor has finished or ``--timeout`` seconds passed;
    print its state as JSON.
``run``
    Run the pipeline in ``DIR/pipeline.pkl`` in the foreground.
``cancel``
    Stop the executor and every process its tasks started.

On-disk contract of a work folder (all written atomically or append-only, so
whatever finished survives a crash of anything later):

- ``state.json``   status (running / finished / failed / cancelled), progress, pid
- ``journal``      one record per finished task: a JSON header line, then the
                   task's pickled Result (``payload`` bytes)
- ``logs/``        each task's captured stdout and stderr, and ``executor.log``
"""

from __future__ import annotations

import argparse
import faulthandler
import fcntl
import hashlib
import io
import json
import os
import pickle
import platform
import reprlib
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from returns.result import Result

# cloudpickle and returns are imported when a pipeline is run or a result handled, not
# for deploy, start, wait and cancel: each of those is a short process on the host.
cloudpickle: Any = None
Failure: Any = None
Success: Any = None
is_successful: Any = None
_Result: Any = None


def _need_libraries() -> None:
    global cloudpickle, Failure, Success, is_successful, _Result
    if cloudpickle is None:
        import cloudpickle as _cloudpickle
        from returns.pipeline import is_successful as _is_successful
        from returns.result import Failure as _Failure
        from returns.result import Result as _ResultClass
        from returns.result import Success as _Success

        cloudpickle, Failure, Success, is_successful, _Result = (
            _cloudpickle, _Failure, _Success, _is_successful, _ResultClass)

EXECUTOR_VERSION = "1"
DEFAULT_LOG_CAP = 10 * 1024 * 1024
JOURNAL = "journal"
STATE = "state.json"
PIPELINE = "pipeline.pkl"
SPEC = "node.json"

# ---------------------------------------------------------------------------
# Result semantics: the one place where a task's outcome becomes a Result.
# ---------------------------------------------------------------------------


def as_result(value: Any) -> Result:
    """What ``run()`` returned, as a Result: a Result is kept as is, anything else becomes Success(value)."""
    _need_libraries()
    if isinstance(value, _Result):
        return value
    return Success(value)


def call_task(task: Any, log: Optional[IO[str]] = None) -> Result:
    """Run ``task.run()`` and apply the Result semantics.

    An exception becomes ``Failure(str(exception))``; its full traceback goes
    to ``log`` (the task's log, stderr by default).
    """
    _need_libraries()
    try:
        return as_result(task.run())
    except Exception as exc:  # the task's own error: its result, not ours
        traceback.print_exc(file=log or sys.stderr)
        return Failure(str(exc))
    except BaseException as exc:  # SystemExit, KeyboardInterrupt raised by the task
        traceback.print_exc(file=log or sys.stderr)
        return Failure(f"task ended with {type(exc).__name__}({exc})")


# Results go back to the controller, which loads them as untrusted data: classes the
# experiment shipped (pickled by value into the pipeline) are referred to by cloudpickle's
# tracker id, never sent back as code. See unicorn_ansible/_safe_pickle.py.
SHIPPED_CLASS = "unicorn-ansible-class"
# results up to this size travel as one datagram (Linux's default socket buffer takes ~200 KB)
RESULT_DATAGRAM_MAX = 64 * 1024


def _shipped_class_id(obj: Any) -> Any:
    if isinstance(obj, type):
        tracker = getattr(cloudpickle.cloudpickle, "_DYNAMIC_CLASS_TRACKER_BY_CLASS", {}).get(obj)
        if tracker is not None:
            return (SHIPPED_CLASS, tracker)
    return None


def dumps_result(result: Any) -> bytes:
    """Pickle a task's Result for the controller."""
    _need_libraries()
    buffer = io.BytesIO()
    pickler = cloudpickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.persistent_id = _shipped_class_id
    pickler.dump(result)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Small file helpers
# ---------------------------------------------------------------------------


def write_json_atomic(path: str, data: Any) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


class _ShortRepr(reprlib.Repr):
    """repr that never builds the whole text of a huge value (a 200 MB bytes, a long list)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 2000
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = self.maxdict = 200
        self.maxlevel = 8

    def repr_bytes(self, value: bytes, level: int) -> str:
        if len(value) <= 200:
            return repr(value)
        return f"<{type(value).__name__} of {len(value)} bytes: {bytes(value[:64])!r}...>"

    repr_bytearray = repr_bytes


def bounded_repr(value: Any, limit: int) -> str:
    """A Result (or any value) as text of at most about ``limit`` characters, built without
    the whole repr of a huge value; a Result reads as the returns library shows it."""
    _need_libraries()
    try:
        if isinstance(value, _Result):
            inner = value.unwrap() if is_successful(value) else value.failure()
            shown = inner[:limit] if isinstance(inner, str) else _ShortRepr().repr(inner)
            text = f"<{'Success' if is_successful(value) else 'Failure'}: {shown}>"
        else:
            text = _ShortRepr().repr(value)
    except Exception as exc:  # a user's __repr__ may raise
        text = f"<unprintable {type(value).__name__}: {exc}>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _preview(result: Result, limit: int = 200) -> str:
    text = bounded_repr(result, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------
# The journal: append-only records of finished tasks.
# ---------------------------------------------------------------------------


@dataclass
class Record:
    """One finished task as the journal keeps it; ``payload`` is its pickled Result."""

    header: Dict[str, Any]
    payload: bytes

    @property
    def name(self) -> str:
        return self.header["name"]

    @property
    def successful(self) -> bool:
        return self.header["type"] == "Success"


def append_record(journal: IO[bytes], header: Dict[str, Any], payload_source: IO[bytes], size: int) -> int:
    """Append one record, copying ``size`` payload bytes from ``payload_source``; return the payload offset."""
    header = dict(header, payload_len=size)
    journal.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
    offset = journal.tell()
    shutil.copyfileobj(payload_source, journal, 1024 * 1024)
    journal.write(b"\n")
    journal.flush()
    return offset


def iter_records(path: str, with_payload: bool = True) -> Iterator[Record]:
    """The complete records of a journal; a record torn by a crash ends the iteration."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        while True:
            line = handle.readline()
            if not line.endswith(b"\n"):
                return
            try:
                header = json.loads(line)
                size = int(header["payload_len"])
            except (ValueError, KeyError, TypeError):
                return
            if with_payload:
                payload = handle.read(size)
                if len(payload) != size:
                    return
            else:
                payload = b""
                here = handle.tell()
                handle.seek(0, io.SEEK_END)
                if handle.tell() < here + size + 1:
                    return
                handle.seek(here + size)
            if handle.read(1) != b"\n":
                return
            yield Record(header, payload)


def results_by_name(records: List[Record], loads: Callable[[bytes], Any] = pickle.loads) -> Dict[str, List[Result]]:
    """netunicorn's shape: task name -> list of Results, in the order they finished."""
    out: Dict[str, List[Result]] = {}
    for record in sorted(records, key=lambda r: r.header["seq"]):
        out.setdefault(record.name, []).append(loads(record.payload))
    return out


def results_by_stage(records: List[Record], loads: Callable[[bytes], Any] = pickle.loads) -> List[Any]:
    """The tutorial's shape: one entry per stage that ran, the Result of a single-task
    stage or the list of Results (in pipeline order) of a parallel stage."""
    stages: Dict[int, Dict[int, Record]] = {}
    sizes: Dict[int, int] = {}
    for record in records:
        stage = record.header["stage"]
        stages.setdefault(stage, {})[record.header["index"]] = record
        sizes[stage] = record.header["stage_size"]
    out: List[Any] = []
    for stage in sorted(stages):
        ordered = [loads(stages[stage][i].payload) for i in sorted(stages[stage])]
        out.append(ordered[0] if sizes[stage] == 1 else ordered)
    return out


class PreviousSteps(Mapping):
    """``task.previous_steps``: task name -> list of Results of every task that ran before,
    read from the journal when asked for (a large result is not loaded unless used)."""

    def __init__(self, journal_path: str, index: Dict[str, List[Tuple[int, int]]]) -> None:
        self._path = journal_path
        self._index = index

    def __getitem__(self, name: str) -> List[Result]:
        places = self._index[name]
        out = []
        with open(self._path, "rb") as handle:
            for offset, size in places:
                handle.seek(offset)
                out.append(pickle.loads(handle.read(size)))
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"PreviousSteps({list(self._index)})"


# ---------------------------------------------------------------------------
# Running one pipeline
# ---------------------------------------------------------------------------


@dataclass
class _Running:
    task: Any
    seq: int
    stage: int
    index: int
    stage_size: int
    pid: int
    fd: int
    start: float
    deadline: Optional[float]
    log_path: str
    buffer: bytearray = field(default_factory=bytearray)
    logged: int = 0
    dropped: int = 0
    eof: bool = False
    status: Optional[int] = None
    killed_for: Optional[str] = None


class GraphScheduler:
    """Walks a graph plan with netunicorn's rules (see ``unicorn_ansible.ExecutionGraph``).

    A vertex becomes *waiting* when an edge to it is traversed, and starts when none of its
    strong predecessors is still to run: each finished at least once and none is waiting
    or running again. A synchronisation point passes at once; a task starts a process."""

    def __init__(self, plan: Any) -> None:
        self.vertices: List[Any] = list(plan.vertices)
        self.early_stopping = bool(getattr(plan, "early_stopping", True))
        self.successors: Dict[int, List[List[Any]]] = {i: [] for i in range(len(self.vertices))}
        self.strong: Dict[int, List[int]] = {i: [] for i in range(len(self.vertices))}
        for u, v, attributes in plan.edges:
            self.successors[u].append([v, dict(attributes)])
            if attributes.get("type", "strong") != "weak":
                self.strong[v].append(u)
        self.waiting: List[int] = [0]  # vertex 0 is "root"
        self.active: set = set()
        self.finished: set = set()
        self.runs: Dict[int, int] = {}
        self.stopped: Optional[str] = None  # why no task starts any more

    def is_task(self, vertex: int) -> bool:
        return hasattr(self.vertices[vertex], "run")

    def name(self, vertex: int) -> str:
        item = self.vertices[vertex]
        return str(getattr(item, "name", item))

    def traverse(self, vertex: int, ok: Optional[bool]) -> None:
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
            if "counter" in attributes:
                attributes["counter"] -= 1
                if attributes["counter"] <= 0:
                    self.successors[vertex].remove(edge)
        if ok is False and self.early_stopping and not followed:
            self.stopped = f"task {self.name(vertex)} failed; early stopping: no task starts after it"

    def ready(self) -> List[int]:
        """Tasks to start now; synchronisation points on the way are passed."""
        start: List[int] = []
        passes = 0
        progressed = True
        while progressed and self.stopped is None:
            progressed = False
            for vertex in list(self.waiting):
                if vertex in self.active or any(
                    u not in self.finished or u in self.active or u in self.waiting for u in self.strong[vertex]
                ):
                    continue
                self.waiting.remove(vertex)
                progressed = True
                if self.is_task(vertex):
                    self.active.add(vertex)
                    start.append(vertex)
                else:
                    passes += 1
                    if passes > 100000:
                        self.stopped = "the graph loops through synchronisation points without a task to run"
                        break
                    self.finished.add(vertex)
                    self.traverse(vertex, None)
        return start

    def ended(self, vertex: int, ok: bool) -> List[int]:
        self.active.discard(vertex)
        self.finished.add(vertex)
        self.runs[vertex] = self.runs.get(vertex, 0) + 1
        self.traverse(vertex, ok)
        return self.ready()

    def deadlocked(self) -> List[int]:
        """Vertices left waiting when nothing runs: their strong predecessors never ran."""
        return list(self.waiting) if self.stopped is None and not self.active else []


class Executor:
    """Runs the stages of one pipeline in a work folder; see the module docstring."""

    def __init__(
        self,
        pipeline: Any,
        workdir: str,
        environment: Optional[Dict[str, str]] = None,
        task_timeout: Optional[float] = None,
        log_cap: int = DEFAULT_LOG_CAP,
        time_limit: Optional[float] = None,
    ) -> None:
        _need_libraries()
        self.pipeline = pipeline
        self.time_limit = time_limit
        self._state_dirty = False
        self._state_saved = 0.0
        self._waiting: List[_Running] = []  # ended output or killed, not reaped yet
        self.deadline: Optional[float] = None
        self.workdir = os.path.abspath(workdir)
        self.environment = dict(environment or {})
        self.task_timeout = task_timeout
        self.log_cap = log_cap
        self.logs_dir = os.path.join(self.workdir, "logs")
        self.tmp_dir = os.path.join(self.workdir, "tmp")
        self.journal_path = os.path.join(self.workdir, JOURNAL)
        self.state_path = os.path.join(self.workdir, STATE)
        self.graph: Optional[GraphScheduler] = GraphScheduler(pipeline) if hasattr(pipeline, "vertices") else None
        self.stages: List[List[Any]] = [] if self.graph else [list(stage) for stage in pipeline.tasks]
        self.total = sum(len(stage) for stage in self.stages) if self.graph is None else \
            sum(1 for vertex in range(len(self.graph.vertices)) if self.graph.is_task(vertex))
        self.done = 0
        self.failed = 0
        self.seq = 0
        self.cancelled = False
        self._index: Dict[str, List[Tuple[int, int]]] = {}
        self._log: Optional[IO[str]] = None
        self.state: Dict[str, Any] = {}
        # Small results come back as one datagram each on a socket every task inherits
        # (no file to create, read and delete); larger ones in a file (see _child).
        self._results_in, self._results_out = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._results_in.setblocking(False)
        self._inbox: Dict[int, Tuple[Dict[str, Any], IO[bytes], int]] = {}

    # -- logging and state ---------------------------------------------------
    def log(self, message: str) -> None:
        if self._log is not None:
            self._log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
            self._log.flush()

    def save_state(self, **changes: Any) -> None:
        self.state.update(changes, done=self.done, failed=self.failed, total=self.total, updated=time.time())
        write_json_atomic(self.state_path, self.state)
        self._state_dirty = False
        self._state_saved = time.monotonic()

    def _save_state_if_due(self) -> None:
        """Progress in state.json at most every 0.1 s (the journal has every result at once)."""
        if self._state_dirty and time.monotonic() - self._state_saved >= 0.1:
            self.save_state()

    # -- main loop -------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        """Run every stage; return the final state (also in state.json)."""
        for folder in (self.logs_dir, self.tmp_dir):
            os.makedirs(folder, exist_ok=True)
        self._log = open(os.path.join(self.logs_dir, "executor.log"), "a", encoding="utf-8")
        previous_handler = None
        try:
            previous_handler = signal.signal(signal.SIGTERM, self._on_term)
        except ValueError:  # not the main thread: cancel goes through cancel_tree only
            previous_handler = None
        early_stopping = bool(getattr(self.pipeline, "early_stopping", True))
        self.state = {
            "status": "running",
            "pid": os.getpid(),
            "started": time.time(),
            "stages": len(self.stages),
            "stage": 0,
            "shape": "graph" if self.graph else "stages",
            "executor_version": EXECUTOR_VERSION,
            "python": platform.python_version(),
            "not_run": [],
        }
        self.save_state()
        if self.time_limit:
            self.deadline = time.monotonic() + float(self.time_limit)
        self.log(f"pipeline {getattr(self.pipeline, 'name', '?')}: {len(self.stages)} stages, {self.total} tasks")
        try:
            with open(self.journal_path, "ab") as journal:
                if self.graph is not None:
                    not_run = self._run_graph(journal)
                for number, stage in enumerate(self.stages):
                    if self.cancelled or self._out_of_time():
                        break
                    self.state["stage"] = number + 1
                    self._state_dirty = True
                    self._save_state_if_due()
                    self.log(f"stage {number + 1}/{len(self.stages)}: {len(stage)} task(s)")
                    stage_ok = self._run_stage(number, stage, journal)
                    if not stage_ok and early_stopping:
                        self.log(f"stage {number + 1} failed; early stopping: no later stage starts")
                        break
                ran = self.seq
            if self.graph is None:
                not_run = [task.name for stage in self.stages for task in stage][ran:]
            status = "cancelled" if self.cancelled else "timed_out" if self._out_of_time() else "finished"
            self.log(f"{status}: {self.done} task(s) ran, {self.failed} failed, {len(not_run)} not run")
            self.save_state(status=status, finished=time.time(), not_run=not_run, success=self.failed == 0 and not not_run)
        except BaseException as exc:
            self.log("executor error:\n" + traceback.format_exc())
            self.save_state(status="failed", finished=time.time(), error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
            self._log.close()
            self._log = None
            self._results_in.close()
            self._results_out.close()
        return self.state

    def _run_graph(self, journal: IO[bytes]) -> List[str]:
        """Run a graph plan; return the names of its tasks that never ran if it stopped early."""
        graph = self.graph
        assert graph is not None

        def batch(vertices: List[int]) -> List[Tuple[Any, int, int, int]]:
            return [(graph.vertices[v], 0, v, 1) for v in vertices]

        def on_finish(run: _Running, ok: bool) -> List[Tuple[Any, int, int, int]]:
            return batch(graph.ended(run.index, ok))

        self._run_tasks(batch(graph.ready()), journal, on_finish)
        stuck = graph.deadlocked()
        if stuck:
            graph.stopped = ("deadlock: " + ", ".join(graph.name(v) for v in stuck) +
                             " wait(s) for strong predecessors that never ran; make those edges weak")
        if graph.stopped:
            self.log(graph.stopped)
            self.state["stopped"] = graph.stopped
        if graph.stopped or self.cancelled or self._out_of_time():
            return [graph.name(v) for v in range(len(graph.vertices)) if graph.is_task(v) and v not in graph.runs]
        return []

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _on_term(self, signum: int, frame: Any) -> None:
        self.cancelled = True

    def _run_stage(self, number: int, stage: List[Any], journal: IO[bytes]) -> bool:
        return self._run_tasks([(task, number, index, len(stage)) for index, task in enumerate(stage)], journal)

    def _run_tasks(self, start: List[Tuple[Any, int, int, int]], journal: IO[bytes],
                   on_finish: Optional[Callable[[_Running, bool], List[Tuple[Any, int, int, int]]]] = None) -> bool:
        """Run tasks ``(task, stage, index, stage size)`` in parallel until all ended; ``on_finish``
        (a graph's scheduler) may answer each ending with more tasks to start. True if all succeeded."""
        running: Dict[int, _Running] = {}
        selector = selectors.DefaultSelector()
        stage_ok = True

        def spawn(batch: List[Tuple[Any, int, int, int]]) -> None:
            for task, number, index, size in batch:
                run = self._spawn(task, number, index, size)
                running[run.pid] = run
                selector.register(run.fd, selectors.EVENT_READ, run)

        selector.register(self._results_in, selectors.EVENT_READ, None)
        try:
            spawn(start)
            last_scan = time.monotonic()
            stopping = False
            while running:
                if not stopping and (self.cancelled or self._out_of_time()):
                    stopping = True
                    for run in running.values():
                        if run.status is None and run.killed_for is None:
                            run.killed_for = "cancelled" if self.cancelled else "time limit"
                            _kill_group(run.pid)
                # only tasks whose output ended (or that were killed) are looked at each time;
                # all of them every 50 ms (a task may exit while a child holds its output open)
                ended = []
                for key, _ in selector.select(self._next_timeout(running)):
                    run = key.data
                    if run is None:
                        self._receive_results()
                        continue
                    self._drain(run, selector)
                    if run.eof:
                        ended.append(run)
                self._save_state_if_due()
                now = time.monotonic()
                if now - last_scan >= 0.05 or stopping:
                    last_scan = now
                    candidates = list(running.values())
                    for run in candidates:
                        if run.status is None and run.killed_for is None and run.deadline is not None \
                                and now >= run.deadline:
                            run.killed_for = "timeout"
                            _kill_group(run.pid)
                else:
                    candidates = ended + [run for run in self._waiting if run.pid in running]
                self._waiting = []
                for run in candidates:
                    if run.status is None:
                        self._reap(run)
                    if run.status is None:
                        if run.eof or run.killed_for:
                            self._waiting.append(run)  # exiting: look again in a moment
                        continue
                    if not run.eof:  # exited, but a process it started still holds its output open
                        self._drain_rest(run, selector)
                    if running.pop(run.pid, None) is None:
                        continue
                    ok = self._finish(run, journal)
                    stage_ok = stage_ok and ok
                    if on_finish is not None:
                        more = on_finish(run, ok)
                        if not stopping and not self.cancelled and not self._out_of_time():
                            spawn(more)
        finally:
            for run in running.values():
                _kill_group(run.pid)
                try:
                    os.waitpid(run.pid, 0)
                except ChildProcessError:
                    pass
            selector.close()
        return stage_ok

    def _next_timeout(self, running: Dict[int, _Running]) -> float:
        if self._waiting:
            return 0.001
        timeout = 0.05
        deadlines = [run.deadline for run in running.values() if run.deadline is not None]
        if self.deadline is not None:
            deadlines.append(self.deadline)
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        return timeout

    def _spawn(self, task: Any, stage: int, index: int, stage_size: int) -> _Running:
        seq = self.seq
        self.seq += 1
        name = str(getattr(task, "name", f"task-{seq}"))
        log_path = os.path.join(self.logs_dir, f"{seq:05d}-{_safe(name)}.log")
        result_path = os.path.join(self.tmp_dir, f"{seq}.result")
        # the child's copy of memory is a snapshot: the index needs no copy
        previous = PreviousSteps(self.journal_path, self._index)
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the task's own process
            try:
                os.close(read_fd)
                os.setpgid(0, 0)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(write_fd, 1)
                os.dup2(write_fd, 2)
                os.close(write_fd)
                os.close(null)
                sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
                sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
                if faulthandler.is_enabled():  # a crash dump belongs in the task's log, not the parent's stderr
                    faulthandler.enable(file=sys.stderr)
                _child(task, previous, result_path, self.environment, self._results_out, seq)
            finally:
                os._exit(0)
        os.close(write_fd)
        start = time.monotonic()
        deadline = start + self.task_timeout if self.task_timeout else None
        self.log(f"task {name} started (stage {stage + 1}, pid {pid})")
        return _Running(task, seq, stage, index, stage_size, pid, read_fd, time.time(), deadline, log_path)

    def _drain(self, run: _Running, selector: selectors.BaseSelector) -> None:
        try:
            chunk = os.read(run.fd, 65536)
        except BlockingIOError:
            raise
        except OSError:
            chunk = b""
        if not chunk:
            selector.unregister(run.fd)
            os.close(run.fd)
            run.eof = True
            return
        room = self.log_cap - run.logged - len(run.buffer)
        if room > 0:
            run.buffer += chunk[:room]
        run.dropped += max(0, len(chunk) - max(room, 0))
        if len(run.buffer) >= 256 * 1024:
            self._flush_log(run)

    def _flush_log(self, run: _Running, trailer: bytes = b"") -> None:
        if not run.buffer and not trailer:  # a task that printed nothing has no log file
            return
        with open(run.log_path, "ab") as handle:
            handle.write(run.buffer + trailer)
        run.logged += len(run.buffer)
        run.buffer.clear()

    def _drain_rest(self, run: _Running, selector: selectors.BaseSelector) -> None:
        os.set_blocking(run.fd, False)
        try:
            while not run.eof:
                self._drain(run, selector)
        except BlockingIOError:
            selector.unregister(run.fd)
            os.close(run.fd)
            run.eof = True

    def _reap(self, run: _Running) -> None:
        try:
            pid, status = os.waitpid(run.pid, os.WNOHANG)
        except ChildProcessError:
            run.status = -1
            return
        if pid:
            run.status = status

    def _receive_results(self) -> None:
        """Every result message waiting: ``JSON meta line`` + the pickled Result, or, for a large
        one, the line and a memory file holding it; kept by task number."""
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._results_in, RESULT_DATAGRAM_MAX + 4096, 1)
            except (BlockingIOError, InterruptedError):
                return
            line, _, payload = data.partition(b"\n")
            try:
                meta = json.loads(line)
                seq = int(meta["seq"])
            except (ValueError, KeyError, TypeError):
                for fd in fds:
                    os.close(fd)
                continue  # not from one of our tasks: a task without a result is reported as such
            if fds:
                os.lseek(fds[0], 0, os.SEEK_SET)  # the sender's offset (the end) comes with the file
                size = os.fstat(fds[0]).st_size
                self._inbox[seq] = (meta, os.fdopen(fds[0], "rb"), size)
            else:
                self._inbox[seq] = (meta, io.BytesIO(payload), len(payload))

    def _finish(self, run: _Running, journal: IO[bytes]) -> bool:
        name = str(getattr(run.task, "name", f"task-{run.seq}"))
        end = time.time()
        trailer = b""
        if run.dropped:
            trailer = (
                f"\n[unicorn-ansible: output capped at {self.log_cap} bytes; "
                f"{run.dropped} more bytes were dropped]\n"
            ).encode()
        self._flush_log(run, trailer)
        result_path = os.path.join(self.tmp_dir, f"{run.seq}.result")
        kind = "ok"
        header_extra: Dict[str, Any] = {}
        message = None
        if run.killed_for:  # a result sent just before the kill is not used: close its file
            self._receive_results()
            unused = self._inbox.pop(run.seq, None)
            if unused is not None:
                unused[1].close()
        if run.killed_for == "timeout":
            kind = "timeout"
            result: Optional[Result] = Failure(f"task {name} timed out after {self.task_timeout:g} s")
        elif run.killed_for == "cancelled":
            kind = "cancelled"
            result = Failure(f"task {name} was cancelled")
        elif run.killed_for == "time limit":
            kind = "timeout"
            result = Failure(f"task {name} was stopped: the node's time limit of {self.time_limit:g} s was reached")
        else:
            result = None
            self._receive_results()  # sent before the task exited: it is in the queue by now
            message = self._inbox.pop(run.seq, None)
            source = _open_result(result_path) if message is None else (message[1], message[0], message[2])
            if source is None:
                kind = "crash"
                result = Failure(f"task {name} {_describe_exit(run.status)} before returning a result")
            else:
                meta, size = source[1], source[2]
                kind = meta.get("kind", "ok")
                header_extra = {"type": meta["type"], "preview": meta.get("preview", "")}
        if result is not None:
            payload = dumps_result(result)
            source = (io.BytesIO(payload), {}, len(payload))
            header_extra = {"type": "Failure", "preview": _preview(result)}
        header = {
            "seq": run.seq,
            "name": name,
            "stage": run.stage,
            "index": run.index,
            "stage_size": run.stage_size,
            "kind": kind,
            "start": run.start,
            "end": end,
            "log": os.path.relpath(run.log_path, self.workdir),
            "log_dropped": run.dropped,
            **header_extra,
        }
        handle, _, size = source
        with handle:
            offset = append_record(journal, header, handle, size)
        self._index.setdefault(name, []).append((offset, size))
        if message is None:  # the result came in a file (or none came)
            try:
                os.unlink(result_path)
            except FileNotFoundError:
                pass
        ok = header["type"] == "Success"
        self.done += 1
        self.failed += 0 if ok else 1
        self._state_dirty = True
        self._save_state_if_due()
        self.log(f"task {name} ended: {kind}, {header['preview']}")
        return ok


def _open_result(path: str) -> Optional[Tuple[IO[bytes], Dict[str, Any], int]]:
    """A task's result file: (file positioned at the payload, its meta, payload size); None if missing."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    line = handle.readline()
    try:
        meta = json.loads(line)
    except ValueError:
        handle.close()
        return None
    return handle, meta, os.fstat(handle.fileno()).st_size - len(line)


def _child(task: Any, previous: PreviousSteps, result_path: str, environment: Dict[str, str],
           results: Optional[socket.socket] = None, seq: int = 0) -> None:
    """Body of a task's process: run it; send its Result on ``results``, or, when larger than a
    datagram takes, write it to result_path."""
    os.environ.update(environment)
    try:
        task.previous_steps = previous
    except Exception:  # a task class may forbid new attributes; it then has no previous steps
        pass
    result = call_task(task)
    kind = "ok" if is_successful(result) else "failure"
    try:
        payload = dumps_result(result)
    except Exception as exc:
        print(f"[unicorn-ansible] the result cannot be pickled: {type(exc).__name__}: {exc}", file=sys.stderr)
        result = Failure(
            f"the result of task {getattr(task, 'name', '?')} cannot be pickled "
            f"({type(exc).__name__}: {exc}); return plain data (str, numbers, lists, dicts, bytes)"
        )
        payload = dumps_result(result)
        kind = "unpicklable"
    sys.stdout.flush()
    sys.stderr.flush()
    meta = {"type": "Success" if is_successful(result) else "Failure", "kind": kind, "preview": _preview(result)}
    if results is not None:
        line = json.dumps(dict(meta, seq=seq)).encode() + b"\n"
        try:
            if len(payload) <= RESULT_DATAGRAM_MAX:
                results.send(line + payload)
            else:  # a large result: in a memory file handed over with the message (no disk write)
                memory = os.memfd_create(f"unicorn-result-{seq}", os.MFD_CLOEXEC)
                try:
                    with open(memory, "wb", closefd=False) as handle:
                        handle.write(payload)
                    socket.send_fds(results, [line], [memory])
                finally:
                    os.close(memory)
            return
        except (AttributeError, OSError):
            pass  # no memfd here, a smaller socket buffer than expected...: the file below
    tmp = result_path + ".tmp"
    with open(tmp, "wb") as handle:  # one file: a JSON line, then the pickled Result
        handle.write(json.dumps(meta).encode() + b"\n")
        handle.write(payload)
    os.replace(tmp, result_path)


def _describe_exit(status: Optional[int]) -> str:
    if status is None or status < 0:
        return "ended in an unknown way"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            label = signal.Signals(number).name
        except ValueError:
            label = f"signal {number}"
        return f"was killed by {label}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def _kill_group(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
            return
        except (ProcessLookupError, PermissionError):
            continue


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return cleaned[:80] or "task"


def run_pipeline(
    pipeline: Any,
    workdir: str,
    environment: Optional[Dict[str, str]] = None,
    task_timeout: Optional[float] = None,
    log_cap: int = DEFAULT_LOG_CAP,
    time_limit: Optional[float] = None,
) -> Dict[str, Any]:
    """Run a pipeline object in ``workdir`` in this process; return the final state.

    ``time_limit``: seconds the whole pipeline may run; then its tasks are stopped
    and the state is ``timed_out``."""
    return Executor(pipeline, workdir, environment, task_timeout, log_cap, time_limit).run()


@dataclass
class NodeResults:
    """What a work folder holds, read back: state, records, and both result shapes."""

    state: Dict[str, Any]
    records: List[Record]
    loads: Callable[[bytes], Any] = pickle.loads

    @classmethod
    def read(cls, workdir: str, loads: Callable[[bytes], Any] = pickle.loads) -> "NodeResults":
        return cls(
            read_json(os.path.join(workdir, STATE)) or {},
            list(iter_records(os.path.join(workdir, JOURNAL))),
            loads,
        )

    @property
    def by_stage(self) -> List[Any]:
        return results_by_stage(self.records, self.loads)

    @property
    def by_name(self) -> Dict[str, List[Result]]:
        return results_by_name(self.records, self.loads)


# ---------------------------------------------------------------------------
# Deployment of the environment
# ---------------------------------------------------------------------------


def _environment_key(spec: Dict[str, Any]) -> str:
    text = json.dumps(
        {"commands": spec.get("commands", []), "variables": spec.get("environment_variables", {}),
         "python": sys.version, "prefix": sys.base_prefix},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def deploy(workdir: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    """Prepare the environment described by ``spec``; return (and save) the report."""
    workdir = os.path.abspath(workdir)
    report_path = os.path.join(workdir, "deploy-report.json")
    node = spec.get("node", "?")
    wanted = spec.get("python")
    here = "%d.%d" % sys.version_info[:2]
    report: Dict[str, Any] = {
        "ok": False,
        "node": node,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "skipped": False,
        "commands": [],
        "error": None,
    }
    if wanted and wanted != here:
        report["error"] = (
            f"host {node} has Python {here} ({sys.executable}) but the controller has Python {wanted}; "
            f"pipelines are pickled for Python {wanted}: set ansible_python_interpreter to a Python {wanted} on this host"
        )
        write_json_atomic(report_path, report)
        return report
    commands: List[str] = list(spec.get("commands", []))
    # The controller names the environment folder after the environment's content, so runs
    # with the same requirements on this host share it (and skip deployment).
    env_dir = os.path.normpath(os.path.join(workdir, spec.get("env_dir", "env")))
    key = _environment_key(spec)
    marker = os.path.join(env_dir, ".unicorn-environment")
    logs = os.path.join(workdir, "logs", "deploy")
    if not commands:
        report.update(ok=True, interpreter=sys.executable)
        write_json_atomic(report_path, report)
        return report
    interpreter = os.path.join(env_dir, "bin", "python")
    os.makedirs(os.path.dirname(env_dir), exist_ok=True)
    with open(env_dir + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run deploying the same environment now: wait for it
        return _deploy_locked(workdir, spec, report, report_path, commands, env_dir, key, marker, logs, interpreter)


def _deploy_locked(workdir: str, spec: Dict[str, Any], report: Dict[str, Any], report_path: str,
                   commands: List[str], env_dir: str, key: str, marker: str, logs: str,
                   interpreter: str) -> Dict[str, Any]:
    node = spec.get("node", "?")
    report["environment"] = env_dir
    if not spec.get("redeploy") and os.path.exists(marker) and open(marker).read() == key:
        report.update(ok=True, skipped=True, interpreter=interpreter)
        write_json_atomic(report_path, report)
        return report
    shutil.rmtree(env_dir, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs, exist_ok=True)
    created = subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", env_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    if created.returncode != 0:
        report["error"] = (
            f"host {node}: cannot create a virtual environment with {sys.executable} -m venv "
            f"(exit {created.returncode}): {_tail(created.stdout)}; on Debian/Ubuntu install python3-venv"
        )
        write_json_atomic(report_path, report)
        return report
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = env_dir
    env["PATH"] = os.path.join(env_dir, "bin") + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONHOME", None)
    env.update(spec.get("environment_variables", {}))
    for number, command in enumerate(commands):
        started = time.time()
        log_path = os.path.join(logs, f"{number:03d}.log")
        with open(log_path, "wb") as log:
            done = subprocess.run(
                ["/bin/sh", "-c", command], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=env_dir,  # side effects in the folder stay with the environment
            )
        with open(log_path, "rb") as log:
            log.seek(max(0, os.path.getsize(log_path) - 2000))
            tail = log.read().decode("utf-8", "replace")
        entry = {"command": command, "rc": done.returncode, "start": started, "end": time.time(),
                 "log": os.path.relpath(log_path, workdir), "output_tail": tail}
        report["commands"].append(entry)
        if done.returncode != 0:
            report["error"] = (
                f"requirement {number + 1}/{len(commands)} failed on {node} with exit code "
                f"{done.returncode}: {command}\n{tail.rstrip()}"
            )
            report["failed_command"] = command
            report["failed_rc"] = done.returncode
            write_json_atomic(report_path, report)
            return report
    with open(marker, "w") as handle:
        handle.write(key)
    report.update(ok=True, interpreter=interpreter)
    write_json_atomic(report_path, report)
    return report


def _tail(data: bytes, limit: int = 2000) -> str:
    return data[-limit:].decode("utf-8", "replace").strip()


# ---------------------------------------------------------------------------
# Detached start, wait and cancel
# ---------------------------------------------------------------------------


def _alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def start(workdir: str, bundle: str) -> Dict[str, Any]:
    """Start ``run`` detached, once: a work folder that already has a started executor is left alone."""
    workdir = os.path.abspath(workdir)
    marker = os.path.join(workdir, "started.json")
    started = read_json(marker)
    if started is not None:
        return dict(read_json(os.path.join(workdir, STATE)) or {"status": "starting"}, already_started=True)
    report = read_json(os.path.join(workdir, "deploy-report.json")) or {}
    interpreter = report.get("interpreter") or sys.executable
    env = dict(os.environ)
    if report.get("environment"):  # the node's environment is active for the tasks too
        env["VIRTUAL_ENV"] = env["UNICORN_ENVIRONMENT"] = report["environment"]
        env["PATH"] = os.path.join(report["environment"], "bin") + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONHOME", None)
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    out = open(os.path.join(workdir, "logs", "executor.out"), "ab")
    process = subprocess.Popen(
        [interpreter, bundle, "run", "--workdir", workdir],
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
        start_new_session=True, close_fds=True, cwd=workdir,
    )
    write_json_atomic(marker, {"pid": process.pid, "time": time.time(), "interpreter": interpreter})
    return {"status": "starting", "pid": process.pid}


def current_state(workdir: str) -> Dict[str, Any]:
    """The executor's state; a running state whose process is gone is reported as lost."""
    state = read_json(os.path.join(workdir, STATE))
    started = read_json(os.path.join(workdir, "started.json"))
    if state is None:
        if started is None:
            return {"status": "not started"}
        if not _alive(started.get("pid")):
            return {"status": "lost", "error": "the executor ended before it wrote any state; see logs/executor.out"}
        return {"status": "starting"}
    if state.get("status") == "running" and not _alive(state.get("pid")):
        state["status"] = "lost"
        state["error"] = "the executor process died while the pipeline ran; finished tasks are kept"
    return state


FINAL = ("finished", "failed", "cancelled", "timed_out", "lost", "not started")


def wait(workdir: str, timeout: float, progress_interval: float = 2.0) -> Dict[str, Any]:
    """Block until the executor is done, or has made progress and ``progress_interval``
    seconds passed, or ``timeout`` seconds passed; return its state. A final state comes
    with the outbox packed, ready to be fetched."""
    begin = time.monotonic()
    deadline = begin + timeout
    state = current_state(workdir)
    done_at_start = state.get("done")
    while state.get("status") not in FINAL and time.monotonic() < deadline:
        if state.get("done") != done_at_start and time.monotonic() - begin >= progress_interval:
            break
        time.sleep(0.02)
        state = current_state(workdir)
    if state.get("status") in FINAL:
        pack_outbox(workdir)
    return dict(state, new=_unreported(workdir))


_REPORT_LIMIT = 500


def _unreported(workdir: str) -> List[Dict[str, Any]]:
    """Headers (name, result type, preview, times) of tasks finished since the last call, so
    the controller knows what finished even if this host is lost before its results are fetched."""
    mark_path = os.path.join(workdir, "reported.json")
    reported = (read_json(mark_path) or {}).get("seq", -1)
    fresh = []
    for record in iter_records(os.path.join(workdir, JOURNAL), with_payload=False):
        if record.header["seq"] > reported:
            fresh.append({k: record.header.get(k) for k in ("seq", "name", "stage", "index", "type", "kind",
                                                              "preview", "start", "end")})
            if len(fresh) >= _REPORT_LIMIT:
                break
    if fresh:
        write_json_atomic(mark_path, {"seq": fresh[-1]["seq"]})
    return fresh


OUTBOX = "outbox.tar"
OUTBOX_MANIFEST = "outbox.json"  # first member: which files are fetched on their own (see unicorn_fetch)
OUTBOX_SEPARATE_OVER = 8 * 1024 * 1024
_OUTBOX_FILES = (STATE, JOURNAL, "deploy-report.json", "started.json")


def copy_range(source: int, target: int, count: int, offset: Optional[int] = None) -> None:
    """Copy ``count`` bytes from file descriptor ``source`` (at ``offset``, or its position) to
    ``target``'s position, inside the kernel where it can (copy_file_range), else by reading."""
    if count and hasattr(os, "copy_file_range"):
        try:
            while count:
                copied = os.copy_file_range(source, target, count, offset)
                if not copied:
                    raise EOFError(f"the file ended {count} bytes early")
                count -= copied
                if offset is not None:
                    offset += copied
            return
        except OSError:  # another file system, an old kernel: the portable way
            pass
    if offset is not None:
        os.lseek(source, offset, os.SEEK_SET)
    while count:
        chunk = os.read(source, min(count, 1 << 20))
        if not chunk:
            raise EOFError(f"the file ended {count} bytes early")
        os.write(target, chunk)
        count -= len(chunk)


def pack_outbox(workdir: str) -> str:
    """One file with everything the controller fetches: state, journal, deploy report, logs.
    A plain tar; file contents are copied inside the kernel (results can be large)."""
    target = os.path.join(workdir, OUTBOX)
    tmp = f"{target}.tmp{os.getpid()}"
    members = [name for name in _OUTBOX_FILES if os.path.isfile(os.path.join(workdir, name))]
    for root, _, files in os.walk(os.path.join(workdir, "logs")):
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                members.append(os.path.relpath(path, workdir))
    manifest: Dict[str, Any] = {"separate": {}}
    journal = os.path.join(workdir, JOURNAL)
    if JOURNAL in members and os.path.getsize(journal) > OUTBOX_SEPARATE_OVER:
        # a large journal is fetched as it is, next to the outbox: no copy here or on the controller
        members.remove(JOURNAL)
        manifest["separate"][JOURNAL] = os.path.getsize(journal)
    def header(name: str, size: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, int(time.time()), 0o644
        return info.tobuf(tarfile.PAX_FORMAT)

    with open(tmp, "wb", buffering=0) as out:
        data = json.dumps(manifest).encode()
        out.write(header(OUTBOX_MANIFEST, len(data)) + data + b"\0" * (-len(data) % tarfile.BLOCKSIZE))
        for name in members:
            with open(os.path.join(workdir, name), "rb") as source:
                size = os.fstat(source.fileno()).st_size  # a file still growing: what it had now
                out.write(header(name, size))
                copy_range(source.fileno(), out.fileno(), size)
                out.write(b"\0" * (-size % tarfile.BLOCKSIZE))
        out.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    os.replace(tmp, target)
    return target


def cancel(workdir: str, grace: float = 5.0) -> Dict[str, Any]:
    """Stop the executor and every process of its session; return the final state."""
    state = current_state(workdir)
    started = read_json(os.path.join(workdir, "started.json")) or {}
    pid = state.get("pid") or started.get("pid")
    if pid and _alive(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_session(pid)
    state = current_state(workdir)
    if state.get("status") == "running":  # killed before it could record the cancel
        state = dict(state, status="cancelled")
        write_json_atomic(os.path.join(workdir, STATE), state)
    pack_outbox(workdir)
    return state


def _kill_session(sid: int) -> None:
    """SIGKILL every process whose session is ``sid`` (the executor and all its tasks started)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


NODE_BUNDLE = "unicorn-node.pyz"


def keep_bundle(workdir: str) -> None:
    """Keep this bundle in the work folder: Ansible's script action runs it from a
    temporary copy it removes afterwards, and start, wait and cancel need it later."""
    bundle = os.path.abspath(sys.argv[0])
    target = os.path.join(workdir, NODE_BUNDLE)
    if zipfile.is_zipfile(bundle) and bundle != target:
        tmp = f"{target}.tmp{os.getpid()}"
        shutil.copyfile(bundle, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)


def unpack_node_files(workdir: str) -> None:
    """The bundle the deployment play shipped carries this node's files under node/: put them in the work folder."""
    bundle = os.path.abspath(sys.argv[0])
    if not zipfile.is_zipfile(bundle):
        return
    with zipfile.ZipFile(bundle) as archive:
        for member in archive.namelist():
            if member.startswith("node/") and "/" not in member[5:] and member[5:]:
                target = os.path.join(workdir, member[5:])
                tmp = f"{target}.tmp{os.getpid()}"
                with open(tmp, "wb") as handle:
                    handle.write(archive.read(member))
                os.chmod(tmp, 0o600)
                os.replace(tmp, target)


def _load_pipeline(workdir: str) -> Any:
    _need_libraries()
    with open(os.path.join(workdir, PIPELINE), "rb") as handle:
        return cloudpickle.load(handle)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="unicorn-executor", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["deploy", "start", "wait", "run", "cancel", "state"])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to block at most for the pipeline to finish (wait: 30 by default; "
                             "start: 0 by default, return at once)")
    args = parser.parse_args(argv)
    workdir = os.path.abspath(os.path.expanduser(args.workdir))
    if args.command == "deploy":
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        keep_bundle(workdir)
        unpack_node_files(workdir)
        spec = read_json(os.path.join(workdir, "deploy.json")) or {}
        report = deploy(workdir, spec)
        summary = {k: report.get(k) for k in ("ok", "skipped", "error", "python", "environment")}
        summary["commands"] = [{"command": c["command"][:200], "rc": c["rc"], "seconds": round(c["end"] - c["start"], 3)}
                               for c in report["commands"]]
        print(json.dumps(summary))
        return 0 if report["ok"] else 1
    if args.command == "start":
        started = start(workdir, os.path.abspath(sys.argv[0]))
        state = wait(workdir, args.timeout) if args.timeout else started
        print(json.dumps(dict(state, already_started=bool(started.get("already_started")))))
        return 0
    if args.command == "wait":
        print(json.dumps(wait(workdir, 30.0 if args.timeout is None else args.timeout)))
        return 0
    if args.command == "state":
        print(json.dumps(current_state(workdir)))
        return 0
    if args.command == "cancel":
        print(json.dumps(cancel(workdir)))
        return 0
    spec = read_json(os.path.join(workdir, SPEC)) or {}
    try:
        pipeline = _load_pipeline(workdir)
    except Exception as exc:
        write_json_atomic(
            os.path.join(workdir, STATE),
            {"status": "failed", "finished": time.time(), "done": 0, "total": 0,
             "error": f"cannot load the pipeline: {type(exc).__name__}: {exc} (a module your tasks import must be "
                      "installed on the host by a requirement, or registered with cloudpickle.register_pickle_by_value)"},
        )
        traceback.print_exc()
        return 1
    environment = dict(spec.get("environment_variables") or {})
    flags = spec.get("flags") or {}
    if flags.get("endpoint"):  # for unicorn_ansible's flag functions and tasks (see _flags.py)
        environment.update(UNICORN_FLAGS=flags["endpoint"], UNICORN_FLAGS_TOKEN=flags.get("token", ""))
    environment.update(flags.get("environment") or {})  # flag-store: NETUNICORN_* for netunicorn's flag tasks
    state = run_pipeline(
        pipeline,
        workdir,
        environment=environment,
        task_timeout=spec.get("task_timeout"),
        log_cap=int(spec.get("log_cap", DEFAULT_LOG_CAP)),
        time_limit=spec.get("time_limit"),
    )
    return 0 if state.get("status") == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
