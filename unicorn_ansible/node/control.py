"""The executor seen from outside: started detached, its state, waited for, cancelled.

Each of these runs as a short process on the host (one SSH command), beside the
detached executor that runs the pipeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from .container import await_start
from .container import remove as remove_container
from .container import run_command as container_command
from .files import write_json_atomic
from .journal import append_record, complete_length, iter_records, unreported
from .outbox import pack_outbox
from .processes import fork_detached, kill_session, pid_alive, session_signals_held
from .protocol import (
    DEPLOY_REPORT,
    EXECUTOR_LOG,
    EXECUTOR_OUT,
    FINAL_STATUSES,
    JOURNAL,
    LOGS,
    STARTED,
    STATE,
    TASK_STARTED,
    ExecutorStatus,
    TaskKind,
)
from .sweep import stop_marked
from .wire import (
    TASK_NAME_CHARS,
    DeployReport,
    ExecutorAnswer,
    ExecutorState,
    Started,
    StoppedProcess,
    TaskRecord,
    WireError,
)


def _task_environment(report: DeployReport | None) -> dict[str, str]:
    """The executor's environment: the node's virtual environment is active for the tasks too."""
    env = dict(os.environ)
    if report is not None and report.environment:
        env["VIRTUAL_ENV"] = env["UNICORN_ENVIRONMENT"] = report.environment
        env["PATH"] = os.path.join(report.environment, "bin") + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONHOME", None)
    return env


def _state(workdir: str) -> ExecutorState | None:
    return ExecutorState.read(os.path.join(workdir, STATE))


def _started(workdir: str) -> Started | None:
    return Started.read(os.path.join(workdir, STARTED))


def _deploy_report(workdir: str) -> DeployReport | None:
    return DeployReport.read(os.path.join(workdir, DEPLOY_REPORT))


def start(workdir: str, command: list[str], run_here: Callable[[], int] | None = None) -> ExecutorAnswer:
    """Start ``command + ["run", ...]`` (this node package) detached, once: a work folder that
    already has a started executor is left alone. ``run_here`` runs that command's work in this
    process: when the executor's interpreter is this one, a fork of this process runs it (no second
    Python to start, ~0.1 s of a small host's processor); otherwise a new process does."""
    workdir = os.path.abspath(workdir)
    if _started(workdir) is not None:
        state = _state(workdir) or ExecutorState(status=ExecutorStatus.STARTING)
        return ExecutorAnswer.of(state, already_started=True)
    report = _deploy_report(workdir)
    undeployed = not_deployed(report)
    if undeployed is not None:  # never started (a later deployment may still start it): nothing is written
        pack_outbox(workdir)  # the deployment's report and logs, for the controller
        return ExecutorAnswer(status=ExecutorStatus.NOT_STARTED, error=undeployed)
    interpreter = (report.interpreter if report else None) or sys.executable
    container = report.container if report else None
    run = ["run", "--workdir", workdir]
    argv = container_command(container, workdir, command) if container else [interpreter, *command, *run]
    os.makedirs(os.path.join(workdir, LOGS), exist_ok=True)
    process: subprocess.Popen[bytes] | None = None
    with open(os.path.join(workdir, LOGS, EXECUTOR_OUT), "ab") as out:
        if run_here is not None and not container and _same_interpreter(interpreter):
            with session_signals_held():  # the SSH session may end as the child detaches (see there)
                pid = fork_detached(run_here, [sys.argv[0], *run], out.fileno(), _task_environment(report), workdir)
                _record_started(workdir, pid, interpreter)
        else:  # Popen returns once the child runs, in its own session from before exec
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_task_environment(report),
                start_new_session=True, close_fds=True, cwd=workdir,
            )
            pid = process.pid
            _record_started(workdir, pid, interpreter)
    if container and process is not None:
        await_start(workdir, process, (report.node if report else None) or "?")
    return ExecutorAnswer(status=ExecutorStatus.STARTING, pid=pid)


def not_deployed(report: DeployReport | None) -> str | None:
    """Why the pipeline must not start on this deployment (its report: none, one without an end,
    one that failed), in one line; None once it deployed. A controller killed during the deployment
    left it so, and a later collect must not start the pipeline there (issue 28, item 10)."""
    if report is None:
        return ("the deployment of this node never ran here (no deploy-report.json); the pipeline was not "
                "started: run the experiment again")
    node = report.node or "this node"
    if not report.finished:
        if report.pid is not None and pid_alive(report.pid):
            return (f"the deployment of {node} did not finish: it is still running (pid {report.pid}, its "
                    "controller gone); the pipeline was not started: collect again once it finished")
        return (f"the deployment of {node} did not finish: it was stopped before its end (with its controller "
                "or the host), the node is not deployed; the pipeline was not started: run the experiment again")
    if not report.ok:
        said = (report.error or "no error given").strip().splitlines()
        return (f"the deployment of {node} failed ({said[0] if said else 'no error given'}); the pipeline was "
                "not started: fix the requirement and run the experiment again")
    return None


def _record_started(workdir: str, pid: int, interpreter: str) -> None:
    write_json_atomic(os.path.join(workdir, STARTED), Started(pid=pid, time=time.time(), interpreter=interpreter).to_json())


def _same_interpreter(interpreter: str) -> bool:
    """Whether a new ``interpreter`` would be this Python as it is: the same executable, and nothing
    in the environment (``PYTHONHOME``, which the executor's environment drops) that set it up otherwise."""
    return interpreter == sys.executable and "PYTHONHOME" not in os.environ


def current_state(workdir: str, cancelling: bool = False) -> ExecutorState:
    """The executor's state; a running state whose process is gone is settled as lost (``cancelling``:
    as cancelled, the cancel having killed it before it recorded the cancel itself)."""
    state = _state(workdir)
    if state is None:
        started = _started(workdir)
        if started is None:
            return ExecutorState(status=ExecutorStatus.NOT_STARTED)
        if not pid_alive(started.pid):
            return ExecutorState(status=ExecutorStatus.LOST,
                                 error=f"the executor ended before it wrote any state; see {LOGS}/{EXECUTOR_OUT}")
        return ExecutorState(status=ExecutorStatus.STARTING)
    if state.status == ExecutorStatus.RUNNING and not pid_alive(state.pid):
        return _settle_lost(workdir, cancelling)
    return state


#: the error of an executor found dead while its pipeline ran
LOST_ERROR = ("the executor process died while the pipeline ran (killed: out of memory, kill -9?); finished tasks "
              "are kept, the task(s) running then are failed, those after them not run")


def _settle_lost(workdir: str, cancelling: bool = False) -> ExecutorState:
    """The executor died while its pipeline ran (kill -9, the OOM killer): once, under the work
    folder's lock, stop what its tasks left running (the processes carrying its marker), journal
    each task it was running as failed ("the executor died while it ran"), and record it all in
    state.json as ``lost``; later looks read that record."""
    with _locked(os.path.join(workdir, f"{STATE}.lock")):
        state = _state(workdir)
        if state is None:
            return ExecutorState(status=ExecutorStatus.LOST, error=LOST_ERROR)
        if state.status != ExecutorStatus.RUNNING or pid_alive(state.pid):  # another look settled it meanwhile
            return state
        died = _died_tasks(workdir)
        # the tasks' own processes (forked by the executor: the marker is not in their environment
        # as /proc shows it) and every process carrying the marker
        stopped = stop_marked(state.marker or "-", also=[pid for task, pid in died if _started_at(pid, task.start)])
        _journal_failed(workdir, [task for task, _ in died], cancelling)
        lost = dataclasses.replace(
            state, status=ExecutorStatus.CANCELLED if cancelling else ExecutorStatus.LOST, finished=time.time(),
            done=(state.done or 0) + len(died), failed=(state.failed or 0) + len(died), success=False,
            error=None if cancelling else LOST_ERROR, stopped_processes=state.stopped_processes + stopped)
        write_json_atomic(os.path.join(workdir, STATE), lost.to_json())
        return lost


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _died_tasks(workdir: str) -> list[tuple[TaskRecord, int]]:
    """The tasks the executor log says started and the journal does not have, each with its pid."""
    finished = set()
    with contextlib.suppress(WireError):  # what follows a record no executor writes is not counted
        for record in iter_records(os.path.join(workdir, JOURNAL), with_payload=False):
            finished.add(record.header.seq)
    return [(task, pid) for task, pid in _started_tasks(workdir) if task.seq not in finished]


def _started_at(pid: int, start: float | None, slack: float = 3.0) -> bool:
    """Whether process ``pid`` is one that started at ``start`` (not another that reuses its number)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            ticks = int(handle.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return start is not None and abs(boot + ticks / os.sysconf("SC_CLK_TCK") - start) <= slack


def _journal_failed(workdir: str, died: list[TaskRecord], cancelling: bool = False) -> None:
    """Journal each task as failed: the executor died while it ran (``cancelling``: it was cancelled)."""
    if not died:
        return
    from returns.result import Failure  # only here: a look at a live executor needs none of it

    from .handoff import Handoff

    journal_path = os.path.join(workdir, JOURNAL)
    end = complete_length(journal_path)
    with open(journal_path, "ab") as journal:
        journal.truncate(end)  # a record the executor was writing when it died is torn: dropped
        for task in died:
            message = (f"task {task.name} was cancelled" if cancelling else
                       f"task {task.name} did not end: the executor died while it ran (killed: out of memory, "
                       "kill -9?); the processes it left were stopped")
            handoff = Handoff.of(Failure(message), TaskKind.CANCELLED if cancelling else TaskKind.CRASH)
            header = dataclasses.replace(task, end=time.time(), kind=handoff.meta.kind, type=handoff.meta.type,
                                         preview=handoff.meta.preview, payload_len=handoff.size)
            append_record(journal, header, handoff.payload, handoff.size)


def _started_tasks(workdir: str) -> list[tuple[TaskRecord, int]]:
    """The tasks the executor log says started (each a journal header still to be completed), with their pids."""
    found: dict[int, tuple[TaskRecord, int]] = {}
    prefix = f" {TASK_STARTED} "
    try:
        handle = open(os.path.join(workdir, LOGS, EXECUTOR_LOG), encoding="utf-8", errors="replace")
    except OSError:
        return []
    with handle:
        for line in handle:
            at = line.find(prefix)
            if at < 0 or at > 40:  # the line's own words come after its time stamp
                continue
            try:
                raw = json.loads(line[at + len(prefix):])
                task = TaskRecord(seq=int(raw["seq"]), name=str(raw["name"])[:TASK_NAME_CHARS],
                                  stage=int(raw["stage"]), index=int(raw["index"]),
                                  stage_size=int(raw["stage_size"]), payload_len=0,
                                  kind=TaskKind.CRASH.value, start=float(raw["start"]), log=str(raw["log"]))
                pid = int(raw["pid"])
            except (ValueError, KeyError, TypeError):
                continue
            found[task.seq] = (task, pid)
    return [found[seq] for seq in sorted(found)]


def wait(workdir: str, timeout: float, progress_interval: float = 2.0) -> ExecutorAnswer:
    """Block until the executor is done, or has made progress and ``progress_interval``
    seconds passed, or ``timeout`` seconds passed; return its state. A final state comes
    with the outbox packed, ready to be fetched."""
    begin = time.monotonic()
    deadline = begin + timeout
    state = current_state(workdir)
    done_at_start = state.done
    while state.status not in FINAL_STATUSES and time.monotonic() < deadline:
        if state.done != done_at_start and time.monotonic() - begin >= progress_interval:
            break
        time.sleep(0.02)
        state = current_state(workdir)
    if state.status in FINAL_STATUSES:
        pack_outbox(workdir)
    return ExecutorAnswer.of(state, new=tuple(unreported(workdir)))


def cancel(workdir: str, grace: float = 5.0) -> ExecutorAnswer:
    """Stop a deployment in progress, the executor, and every process either started (new
    sessions and double forks included); an executor not started yet never starts. Return the
    final state, with ``stopped_count``: how many processes were stopped."""
    stopped = _stop_deployment(workdir)
    started = _started(workdir)
    if started is None:  # not started: it never will be (start sees this marker)
        write_json_atomic(os.path.join(workdir, STARTED), Started(time=time.time(), cancelled=True).to_json())
        write_json_atomic(os.path.join(workdir, STATE), ExecutorState(
            status=ExecutorStatus.CANCELLED, finished=time.time(), done=0, failed=0,
            error="cancelled before the pipeline started").to_json())
    before = _state(workdir)  # an executor this cancel stops (not one found dead: that one is lost)
    alive = before is not None and before.status == ExecutorStatus.RUNNING and pid_alive(before.pid)
    _stop_executor(workdir, started.pid if started else None, grace)
    report = _deploy_report(workdir)
    if report is not None and report.container is not None:
        remove_container(report.container)
    state = current_state(workdir, cancelling=alive)
    if state.marker:  # what the tasks started and the executor did not stop (it was killed, say)
        stopped += stop_marked(state.marker)
    changed = state
    if stopped:  # listed with what the executor stopped, so the results name every one
        changed = dataclasses.replace(changed, stopped_processes=state.stopped_processes + stopped)
    if state.status == ExecutorStatus.RUNNING:  # killed before it could record the cancel
        changed = dataclasses.replace(changed, status=ExecutorStatus.CANCELLED)
    if changed != state:
        state = changed
        write_json_atomic(os.path.join(workdir, STATE), state.to_json())
    pack_outbox(workdir)
    return ExecutorAnswer.of(state, stopped_count=len(state.stopped_processes))


def _stop_deployment(workdir: str) -> tuple[StoppedProcess, ...]:
    """Stop a deployment still running, with every process its requirements started."""
    report = _deploy_report(workdir)
    if report is None or report.finished or not report.marker or report.pid is None or not pid_alive(report.pid):
        return ()
    return stop_marked(report.marker, also=[report.pid])


def _stop_executor(workdir: str, pid: int | None, grace: float) -> None:
    """SIGTERM the executor (it stops its tasks and records the cancel), then kill its session."""
    state = _state(workdir)
    pid = (state.pid if state else None) or pid
    if not pid or not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_session(pid)
