"""The executor: runs one pipeline's plan in a work folder, in one loop for stages and graphs.

Tasks start as their plan says (see plans.py), each in its own process (see
processes.py); as each one ends, its Result (see handoff.py) is appended to the
journal and the plan answers with the tasks to start next. ``state.json`` says
how far it got; the journal keeps every finished task, so nothing already done
is lost if anything dies later.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import selectors
import signal
import time
import traceback
from collections import deque
from types import FrameType
from typing import IO

from returns.result import Failure

from .artifacts import TaskFolders
from .files import write_json_atomic
from .handoff import Handoff, ResultInbox, run_and_send
from .journal import PreviousSteps, append_record
from .outcome import learn_classes
from .plans import TaskSlot, plan_for
from .processes import (
    CappedLog,
    StartPacer,
    TaskProcess,
    describe_exit,
    fork_task,
    kill_group,
    safe_file_name,
)
from .protocol import (
    ARTIFACTS_ENV,
    DEFAULT_LOG_CAP,
    EXECUTOR_LOG,
    EXECUTOR_VERSION,
    JOURNAL,
    LOGS,
    MARKER_VARIABLE,
    STATE,
    SUCCESS,
    TASK_STARTED,
    ExecutorStatus,
    TaskKind,
)
from .sweep import kept, new_marker, stop_marked
from .wire import ERROR_CHARS, TASK_NAME_CHARS, ExecutorState, JSONObject, TaskRecord, clip

#: progress goes to state.json at most this often (the journal has every result at once)
STATE_INTERVAL = 0.1
#: every running task is looked at this often (one may exit while a child holds its output open)
SCAN_INTERVAL = 0.05


class Executor:
    """Runs one pipeline (a Pipeline, ExecutionGraph or CyclePipeline) in a work folder."""

    def __init__(self, pipeline: object, workdir: str, environment: dict[str, str] | None = None,
                 task_timeout: float | None = None, log_cap: int = DEFAULT_LOG_CAP,
                 time_limit: float | None = None) -> None:
        self.pipeline = pipeline
        learn_classes(pipeline)  # its results name the classes it shipped by their ids
        self.plan = plan_for(pipeline)
        self.workdir = os.path.abspath(workdir)
        self.environment = dict(environment or {})
        self.task_timeout = task_timeout
        self.log_cap = log_cap
        self.time_limit = time_limit
        self.deadline: float | None = None
        self.logs_dir = os.path.join(self.workdir, LOGS)
        self.journal_path = os.path.join(self.workdir, JOURNAL)
        self.state_path = os.path.join(self.workdir, STATE)
        self.inbox = ResultInbox(os.path.join(self.workdir, "tmp"))
        self.artifact_folders = TaskFolders(self.workdir)
        self.done = self.failed = self.seq = 0
        self.cancelled = False
        self.marker = new_marker()  # every process the tasks start carries it (see sweep.py)
        self.state = ExecutorState(status=ExecutorStatus.NOT_STARTED)
        self._state_dirty = False
        self._state_saved = 0.0
        self._index: dict[str, list[tuple[int, int]]] = {}  # task name -> places of its Results
        self._log: IO[str] | None = None
        self._running: dict[int, tuple[TaskSlot, TaskProcess]] = {}
        self._selector = selectors.DefaultSelector()
        self._exiting: list[TaskProcess] = []  # output ended or killed, not reaped yet
        self._pending: deque[TaskSlot] = deque()  # to start when the processors have room (see StartPacer)
        self._pacer = StartPacer()

    # -- logging and state ---------------------------------------------------
    def log(self, message: str) -> None:
        if self._log is not None:
            self._log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
            self._log.flush()

    def save_state(self) -> None:
        """Write the state, with the counts as they are now, to state.json."""
        self.state = dataclasses.replace(self.state, done=self.done, failed=self.failed, total=self.plan.total,
                                         updated=time.time())
        write_json_atomic(self.state_path, self.state.to_json())
        self._state_dirty = False
        self._state_saved = time.monotonic()

    def _save_state_if_due(self) -> None:
        if self._state_dirty and time.monotonic() - self._state_saved >= STATE_INTERVAL:
            self.save_state()

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _should_stop(self) -> bool:
        return self.cancelled or self._out_of_time()

    def _note_stopped(self) -> None:
        """Log and record, once, why the plan starts no more tasks."""
        if self.plan.stopped and self.state.stopped is None:
            self.state = dataclasses.replace(self.state, stopped=clip(self.plan.stopped, ERROR_CHARS))
            self.log(self.plan.stopped)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.cancelled = True

    # -- the run -------------------------------------------------------------------
    def run(self) -> ExecutorState:
        """Run the plan; return the final state (also in state.json)."""
        for folder in (self.logs_dir, self.inbox.tmp_dir):
            os.makedirs(folder, exist_ok=True)
        self._log = open(os.path.join(self.logs_dir, EXECUTOR_LOG), "a", encoding="utf-8")
        try:
            previous_handler = signal.signal(signal.SIGTERM, self._on_term)
        except ValueError:  # not the main thread: cancel goes through the session kill only
            previous_handler = None
        self._begin()
        try:
            with open(self.journal_path, "ab") as journal:
                self._run_plan(journal)
            self._stop_leftovers()
            self._conclude()
        except BaseException as exc:
            self.log("executor error:\n" + traceback.format_exc())
            self._stop_leftovers()
            self.state = dataclasses.replace(self.state, status=ExecutorStatus.FAILED, finished=time.time(),
                                             error=clip(f"{type(exc).__name__}: {exc}", ERROR_CHARS))
            self.save_state()
            raise
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
            self._log.close()
            self._log = None
            self.inbox.close()
            self._selector.close()
        return self.state

    def _begin(self) -> None:
        self.state = ExecutorState(status=ExecutorStatus.RUNNING, pid=os.getpid(), started=time.time(),
                                   stages=len(self.plan.stages), stage=0, shape=self.plan.shape,
                                   executor_version=EXECUTOR_VERSION, python=platform.python_version(),
                                   marker=self.marker)
        self.save_state()
        if self.time_limit:
            self.deadline = time.monotonic() + float(self.time_limit)
        layout = (f"{len(self.plan.stages)} stages" if self.plan.shape == "stages"
                  else "an execution graph")
        self.log(f"pipeline {getattr(self.pipeline, 'name', '?')}: {layout}, {self.plan.total} tasks")

    def _stop_leftovers(self) -> None:
        """The pipeline ended: stop every process its tasks started and left running (except
        those of tasks that keep theirs), and record what was stopped."""
        stopped = stop_marked(self.marker)
        for process in stopped:
            self.log(f"stopped a process the tasks left running: pid {process.pid}: {process.command}")
        self.state = dataclasses.replace(self.state, stopped_processes=self.state.stopped_processes + stopped)

    def _conclude(self) -> None:
        self.plan.finish()
        self._note_stopped()
        not_run = self.plan.not_run(self.seq, self._should_stop())
        status = (ExecutorStatus.CANCELLED if self.cancelled else
                  ExecutorStatus.TIMED_OUT if self._out_of_time() else ExecutorStatus.FINISHED)
        self.log(f"{status}: {self.done} task(s) ran, {self.failed} failed, {len(not_run)} not run")
        self.state = dataclasses.replace(self.state, status=status, finished=time.time(),
                                         not_run=tuple(name[:TASK_NAME_CHARS] for name in not_run),
                                         success=self.failed == 0 and not not_run)
        self.save_state()

    # -- the one loop ----------------------------------------------------------------
    def _run_plan(self, journal: IO[bytes]) -> None:
        """Start the plan's first tasks, then, until none runs, collect output, stop tasks past
        their time, and finish each task that ended, starting what the plan says next."""
        self._selector.register(self.inbox, selectors.EVENT_READ, None)
        try:
            if not self._should_stop():
                self._start(self.plan.first())
            last_scan = time.monotonic()
            stopping = False
            while self._running or self._pending:
                if not stopping and self._should_stop():
                    stopping = True
                    self._pending.clear()
                    self._kill_all("cancelled" if self.cancelled else "time limit")
                self._start_pending()
                ended = self._collect_output()
                self._save_state_if_due()
                now = time.monotonic()
                if now - last_scan >= SCAN_INTERVAL or stopping:
                    last_scan = now
                    self._kill_timed_out(now)
                    candidates = [process for _, process in self._running.values()]
                else:
                    candidates = ended + [p for p in self._exiting if p.pid in self._running]
                self._exiting = []
                for process in candidates:
                    self._finish_if_ended(process, journal, stopping)
        finally:
            for _, process in self._running.values():
                kill_group(process.pid)
                try:
                    os.waitpid(process.pid, 0)
                except ChildProcessError:
                    pass

    def _start(self, slots: list[TaskSlot]) -> None:
        if slots and self.plan.shape == "stages":
            stage = slots[0].stage
            self.state = dataclasses.replace(self.state, stage=stage + 1)
            self._state_dirty = True
            self._save_state_if_due()
            self.log(f"stage {stage + 1}/{len(self.plan.stages)}: {len(slots)} task(s)")
        self._pending.extend(slots)
        self._start_pending()

    def _start_pending(self) -> None:
        """Start the tasks waiting to start, as fast as the processors take them."""
        while self._pending and not self._pacer.busy():
            slot = self._pending.popleft()
            process = self._spawn(slot)
            self._pacer.started(process)
            self._running[process.pid] = (slot, process)
            self._selector.register(process.fd, selectors.EVENT_READ, process)

    def _collect_output(self) -> list[TaskProcess]:
        """Read what is ready (output, results); return the processes whose output ended."""
        ended = []
        for key, _ in self._selector.select(self._next_timeout()):
            process = key.data
            if process is None:
                self.inbox.receive()
                continue
            process.read_output(self._selector)
            if process.eof:
                ended.append(process)
        return ended

    def _next_timeout(self) -> float:
        if self._exiting or self._pending:
            return 0.001
        timeout = SCAN_INTERVAL
        deadlines = [process.deadline for _, process in self._running.values() if process.deadline is not None]
        if self.deadline is not None:
            deadlines.append(self.deadline)
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        return timeout

    def _kill_all(self, reason: str) -> None:
        for _, process in self._running.values():
            if process.running:
                process.kill(reason)

    def _kill_timed_out(self, now: float) -> None:
        for _, process in self._running.values():
            if process.running and process.deadline is not None and now >= process.deadline:
                process.kill("timeout")

    def _finish_if_ended(self, process: TaskProcess, journal: IO[bytes], stopping: bool) -> None:
        """Journal a task that exited (its output drained) and start what the plan says next."""
        if process.status is None:
            process.reap()
        if process.status is None:
            if process.eof or process.killed_for:
                self._exiting.append(process)  # exiting: look again in a moment
            return
        if not process.eof:  # exited, but a process it started still holds its output open
            process.read_rest(self._selector)
        entry = self._running.pop(process.pid, None)
        if entry is None:
            return
        ok = self._finish(entry[0], process, journal)
        more = self.plan.ended(entry[0], ok)
        self._note_stopped()
        if not stopping and not self._should_stop():
            self._start(more)

    # -- one task ----------------------------------------------------------------------
    def _spawn(self, slot: TaskSlot) -> TaskProcess:
        seq = self.seq
        self.seq += 1
        name = _task_name(slot.task, seq)
        log_path = os.path.join(self.logs_dir, f"{seq:05d}-{safe_file_name(name)}.log")
        # the child's copy of memory is a snapshot: the index needs no copy
        previous = PreviousSteps(self.journal_path, self._index)
        marker = kept(self.marker) if getattr(slot.task, "keep_processes", False) else self.marker
        environment = dict(self.environment, **{ARTIFACTS_ENV: self.artifact_folders.folder_for(name),
                                                MARKER_VARIABLE: marker})
        pid, fd = fork_task(lambda: run_and_send(slot.task, previous, environment, self.inbox.sender, seq,
                                                 self.inbox.result_path(seq)))
        deadline = time.monotonic() + self.task_timeout if self.task_timeout else None
        process = TaskProcess(pid, fd, seq, name, CappedLog(log_path, self.log_cap), deadline)
        # one line a reader parses (control.py: an executor that died names the tasks it ran then)
        self.log(f"{TASK_STARTED} " + json.dumps({
            "seq": seq, "name": name, "stage": slot.stage, "index": slot.index, "stage_size": slot.stage_size,
            "pid": pid, "start": process.start, "log": os.path.relpath(log_path, self.workdir)}))
        return process

    def _outcome(self, process: TaskProcess) -> Handoff:
        """The Result of a task that ended: what it sent, or one saying why it has none."""
        name = process.name
        if process.killed_for:
            self.inbox.discard(process.seq)
        if process.killed_for == "timeout":
            return Handoff.of(Failure(f"task {name} timed out after {self.task_timeout:g} s"), TaskKind.TIMEOUT)
        if process.killed_for == "cancelled":
            return Handoff.of(Failure(f"task {name} was cancelled"), TaskKind.CANCELLED)
        if process.killed_for == "time limit":
            return Handoff.of(Failure(f"task {name} was stopped: the node's time limit of {self.time_limit:g} s "
                                      "was reached"), TaskKind.TIMEOUT)
        sent = self.inbox.take(process.seq)
        if sent is None:
            return Handoff.of(Failure(f"task {name} {describe_exit(process.status)} before returning a result"),
                              TaskKind.CRASH)
        return sent

    def _finish(self, slot: TaskSlot, process: TaskProcess, journal: IO[bytes]) -> bool:
        """Append the task's record to the journal; True if its Result is a Success."""
        end = time.time()
        process.log.close()
        handoff = self._outcome(process)
        header = TaskRecord(seq=process.seq, name=process.name, stage=slot.stage, index=slot.index,
                            stage_size=slot.stage_size, kind=handoff.meta.kind, start=process.start, end=end,
                            log=os.path.relpath(process.log.path, self.workdir), log_dropped=process.log.dropped,
                            type=handoff.meta.type, preview=handoff.meta.preview, payload_len=handoff.size)
        with handoff.payload as handle:
            offset = append_record(journal, header, handle, handoff.size)
        self._index.setdefault(process.name, []).append((offset, handoff.size))
        if not handoff.by_socket:  # the result came in a file (or none came)
            try:
                os.unlink(self.inbox.result_path(process.seq))
            except FileNotFoundError:
                pass
        ok = header.type == SUCCESS
        self.done += 1
        self.failed += 0 if ok else 1
        self._state_dirty = True
        self._save_state_if_due()
        self.log(f"task {process.name} ended: {header.kind}, {header.preview}")
        return ok


def _task_name(task: object, seq: int) -> str:
    """A task's name as its journal record keeps it (a name longer than a record takes is cut)."""
    return str(getattr(task, "name", f"task-{seq}"))[:TASK_NAME_CHARS]


def run_pipeline(pipeline: object, workdir: str, environment: dict[str, str] | None = None,
                 task_timeout: float | None = None, log_cap: int = DEFAULT_LOG_CAP,
                 time_limit: float | None = None) -> JSONObject:
    """Run a pipeline object in ``workdir`` in this process; return the final state, as state.json has it.

    ``time_limit``: seconds the whole pipeline may run; then its tasks are stopped
    and the state is ``timed_out``."""
    return Executor(pipeline, workdir, environment, task_timeout, log_cap, time_limit).run().to_json()
