"""The executor seen from outside: started detached, its state, waited for, cancelled.

Each of these runs as a short process on the host (one SSH command), beside the
detached executor that runs the pipeline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .container import await_start
from .container import remove as remove_container
from .container import run_command as container_command
from .files import read_json, write_json_atomic
from .journal import unreported
from .outbox import pack_outbox
from .processes import fork_detached, kill_session, pid_alive
from .protocol import (
    DEPLOY_REPORT,
    EXECUTOR_OUT,
    FINAL_STATUSES,
    LOGS,
    STARTED,
    STATE,
    ExecutorStatus,
)
from .sweep import stop_marked


def _task_environment(report: dict[str, Any]) -> dict[str, str]:
    """The executor's environment: the node's virtual environment is active for the tasks too."""
    env = dict(os.environ)
    if report.get("environment"):
        env["VIRTUAL_ENV"] = env["UNICORN_ENVIRONMENT"] = report["environment"]
        env["PATH"] = os.path.join(report["environment"], "bin") + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONHOME", None)
    return env


def start(workdir: str, command: list[str], run_here: Callable[[], int] | None = None) -> dict[str, Any]:
    """Start ``command + ["run", ...]`` (this node package) detached, once: a work folder that
    already has a started executor is left alone. ``run_here`` runs that command's work in this
    process: when the executor's interpreter is this one, a fork of this process runs it (no second
    Python to start, ~0.1 s of a small host's processor); otherwise a new process does."""
    workdir = os.path.abspath(workdir)
    marker = os.path.join(workdir, STARTED)
    if read_json(marker) is not None:
        state = read_json(os.path.join(workdir, STATE)) or {"status": ExecutorStatus.STARTING}
        return dict(state, already_started=True)
    report = read_json(os.path.join(workdir, DEPLOY_REPORT)) or {}
    interpreter = report.get("interpreter") or sys.executable
    container = report.get("container")
    run = ["run", "--workdir", workdir]
    argv = container_command(container, workdir, command) if container else [interpreter, *command, *run]
    os.makedirs(os.path.join(workdir, LOGS), exist_ok=True)
    process: subprocess.Popen[bytes] | None = None
    with open(os.path.join(workdir, LOGS, EXECUTOR_OUT), "ab") as out:
        if run_here is not None and not container and _same_interpreter(interpreter):
            pid = fork_detached(run_here, [sys.argv[0], *run], out.fileno(), _task_environment(report), workdir)
        else:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_task_environment(report),
                start_new_session=True, close_fds=True, cwd=workdir,
            )
            pid = process.pid
    write_json_atomic(marker, {"pid": pid, "time": time.time(), "interpreter": interpreter})
    if container and process is not None:
        await_start(workdir, process, report.get("node", "?"))
    return {"status": ExecutorStatus.STARTING, "pid": pid}


def _same_interpreter(interpreter: str) -> bool:
    """Whether a new ``interpreter`` would be this Python as it is: the same executable, and nothing
    in the environment (``PYTHONHOME``, which the executor's environment drops) that set it up otherwise."""
    return interpreter == sys.executable and "PYTHONHOME" not in os.environ


def current_state(workdir: str) -> dict[str, Any]:
    """The executor's state; a running state whose process is gone is reported as lost."""
    state = read_json(os.path.join(workdir, STATE))
    started = read_json(os.path.join(workdir, STARTED))
    if state is None:
        if started is None:
            return {"status": ExecutorStatus.NOT_STARTED}
        if not pid_alive(started.get("pid")):
            return {"status": ExecutorStatus.LOST,
                    "error": f"the executor ended before it wrote any state; see {LOGS}/{EXECUTOR_OUT}"}
        return {"status": ExecutorStatus.STARTING}
    if state.get("status") == ExecutorStatus.RUNNING and not pid_alive(state.get("pid")):
        state["status"] = ExecutorStatus.LOST
        state["error"] = "the executor process died while the pipeline ran; finished tasks are kept"
    return state


def wait(workdir: str, timeout: float, progress_interval: float = 2.0) -> dict[str, Any]:
    """Block until the executor is done, or has made progress and ``progress_interval``
    seconds passed, or ``timeout`` seconds passed; return its state. A final state comes
    with the outbox packed, ready to be fetched."""
    begin = time.monotonic()
    deadline = begin + timeout
    state = current_state(workdir)
    done_at_start = state.get("done")
    while state.get("status") not in FINAL_STATUSES and time.monotonic() < deadline:
        if state.get("done") != done_at_start and time.monotonic() - begin >= progress_interval:
            break
        time.sleep(0.02)
        state = current_state(workdir)
    if state.get("status") in FINAL_STATUSES:
        pack_outbox(workdir)
    return dict(state, new=unreported(workdir))


def cancel(workdir: str, grace: float = 5.0) -> dict[str, Any]:
    """Stop a deployment in progress, the executor, and every process either started (new
    sessions and double forks included); an executor not started yet never starts. Return the
    final state, with ``stopped``: how many processes were stopped."""
    stopped = _stop_deployment(workdir)
    started = read_json(os.path.join(workdir, STARTED))
    if started is None:  # not started: it never will be (start sees this marker)
        write_json_atomic(os.path.join(workdir, STARTED), {"pid": None, "time": time.time(), "cancelled": True})
        write_json_atomic(os.path.join(workdir, STATE), {
            "status": ExecutorStatus.CANCELLED, "finished": time.time(), "done": 0, "failed": 0,
            "error": "cancelled before the pipeline started"})
    _stop_executor(workdir, (started or {}).get("pid"), grace)
    container = (read_json(os.path.join(workdir, DEPLOY_REPORT)) or {}).get("container")
    if container:
        remove_container(container)
    state = current_state(workdir)
    if state.get("marker"):  # what the tasks started and the executor did not stop (it was killed, say)
        stopped += stop_marked(str(state["marker"]))
    changed = dict(state)
    if stopped:  # listed with what the executor stopped, so the results name every one
        changed["stopped_processes"] = [*state.get("stopped_processes", []), *stopped]
    if state.get("status") == ExecutorStatus.RUNNING:  # killed before it could record the cancel
        changed["status"] = ExecutorStatus.CANCELLED
    if changed != state:
        state = changed
        write_json_atomic(os.path.join(workdir, STATE), state)
    pack_outbox(workdir)
    return dict(state, stopped=len(state.get("stopped_processes", [])))


def _stop_deployment(workdir: str) -> list[dict[str, Any]]:
    """Stop a deployment still running, with every process its requirements started."""
    report = read_json(os.path.join(workdir, DEPLOY_REPORT)) or {}
    if report.get("finished") or not report.get("marker") or not pid_alive(report.get("pid")):
        return []
    return stop_marked(str(report["marker"]), also=[int(report["pid"])])


def _stop_executor(workdir: str, pid: int | None, grace: float) -> None:
    """SIGTERM the executor (it stops its tasks and records the cancel), then kill its session."""
    state = read_json(os.path.join(workdir, STATE)) or {}
    pid = state.get("pid") or pid
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
