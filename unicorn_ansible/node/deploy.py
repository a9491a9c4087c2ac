"""Deployment of a node's environment: its requirements, run in order in a virtual environment.

The controller names the environment folder after the environment's content, so
runs with the same requirements on a host share it, and a host that already has
exactly that environment skips deployment.

Requirements never wait for input: each runs in its own session (no terminal to prompt
on), stdin from /dev/null, ``DEBIAN_FRONTEND=noninteractive`` unless the node sets it;
one that needed input fails with what it waited for and how to fix it. Each runs
within the requirement time limit and the deployment's; every process a requirement
started carries the deployment's marker (see sweep.py), so a time limit or a cancel
stops them all.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import IO

from .digests import content_key
from .files import write_json_atomic
from .protocol import DEPLOY_REPORT, LOGS, MARKER_VARIABLE, STATE, ExecutorStatus
from .sweep import new_marker, stop_marked
from .wire import COMMAND_CHARS, ERROR_CHARS, CommandRun, DeployReport, DeploySpec, ExecutorState, clip

#: written into an environment once every requirement ran: the hash of what made it
ENVIRONMENT_MARKER = ".unicorn-environment"
#: characters of a command's output a report keeps
_TAIL = 2000


#: what a requirement printed when it waited for input it could not get, and how to fix it
WAITED_FOR_INPUT = (
    (("a terminal is required to read the password", "a password is required", "no tty present",
      "no password was provided", "askpass"),
     ("it waited for sudo's password; run the deployment as root instead: become (ansible_become=true in the "
      "inventory, -K/--ask-become-pass for sudo's password) and drop sudo from the requirement, "
      "or give the user passwordless sudo")),
    (("Do you want to continue? [Y/n] Abort", "[Y/n] Abort"),
     "it waited for apt's confirmation; pass -y (apt-get install -y ...)"),
    (("debconf: unable to initialize frontend", "EOF when reading a line", "end of file on stdin"),
     ("it waited for an answer on stdin; make it non-interactive (DEBIAN_FRONTEND=noninteractive, -y, "
      "--no-input, yes |)")),
)


class DeploymentStopped(BaseException):
    """A SIGTERM (a cancel) reached the deployment."""


@dataclass
class Deployment:
    """One deployment: where its report, environment and logs go, and its time limits."""

    workdir: str
    spec: DeploySpec
    report: DeployReport
    deadline: float | None = None  # monotonic time the whole deployment must end by
    marker: str = ""  # every requirement process carries it (see sweep.py)
    began: float = dataclasses.field(default_factory=time.monotonic)  # monotonic time it began

    @property
    def node(self) -> str:
        return self.spec.node

    @property
    def env_dir(self) -> str:
        return os.path.normpath(os.path.join(self.workdir, self.spec.env_dir))

    @property
    def interpreter(self) -> str:
        return os.path.join(self.env_dir, "bin", "python")

    @property
    def logs(self) -> str:
        return os.path.join(self.workdir, LOGS, "deploy")

    def save(self, report: DeployReport | None = None) -> DeployReport:
        """Write the report (``report``, or the one kept so far) to deploy-report.json."""
        self.report = report or self.report
        write_json_atomic(os.path.join(self.workdir, DEPLOY_REPORT), self.report.to_json())
        return self.report


def _environment_key(spec: DeploySpec) -> str:
    """What made an environment, as its marker keeps it: the requirements, their variables, and this host's Python."""
    return content_key({"commands": list(spec.commands), "variables": dict(spec.environment_variables),
                        "python": sys.version, "prefix": sys.base_prefix}, length=None)


def _new_report(node: str, marker: str) -> DeployReport:
    return DeployReport(node=node, python=platform.python_version(), python_executable=sys.executable,
                        pid=os.getpid(), marker=marker, started=time.time())


def _stop_on_term(signum: int, frame: FrameType | None) -> None:
    raise DeploymentStopped()


def deploy(workdir: str, spec: DeploySpec) -> DeployReport:
    """Prepare the environment described by ``spec``; return (and save) the report. A SIGTERM
    (a cancel) stops it with every requirement process, and the report says so."""
    marker = new_marker()
    limit = spec.time_limit
    deployment = Deployment(os.path.abspath(workdir), spec, _new_report(spec.node, marker),
                            time.monotonic() + float(limit) if limit else None, marker)
    state = ExecutorState.read(os.path.join(deployment.workdir, STATE))
    if state is not None and state.status == ExecutorStatus.CANCELLED:
        return _finished(deployment, error=f"the run was cancelled before {deployment.node} deployed")
    deployment.save()
    previous = _handle_term(_stop_on_term)
    try:
        return _finished(deployment, outcome=_deploy(deployment))
    except DeploymentStopped:
        stop_marked(marker)
        return _finished(deployment, error=f"the deployment of {deployment.node} was cancelled", cancelled=True)
    finally:
        _handle_term(previous)


_Handler = Callable[[int, FrameType | None], object] | int | None


def _handle_term(handler: _Handler) -> _Handler:
    """Install ``handler`` for SIGTERM (in the main thread only); the previous one."""
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def _finished(deployment: Deployment, outcome: DeployReport | None = None, error: str | None = None,
              cancelled: bool | None = None) -> DeployReport:
    """The deployment's last report: ``outcome`` (the report as the deployment ended it), or the
    report so far with ``error``."""
    report = outcome or dataclasses.replace(deployment.report, error=clip(error or "", ERROR_CHARS) or None,
                                            cancelled=cancelled)
    duration = round(max(0.0, time.monotonic() - deployment.began), 6)
    return deployment.save(dataclasses.replace(report, finished=time.time(), duration=duration))


def _ended(deployment: Deployment, **changes: object) -> DeployReport:
    """The report as the deployment ends: the report so far with ``changes`` (ok, error, interpreter...)."""
    if isinstance(changes.get("error"), str):
        changes["error"] = clip(str(changes["error"]), ERROR_CHARS)
    return dataclasses.replace(deployment.report, **changes)  # type: ignore[arg-type]


def _deploy(deployment: Deployment) -> DeployReport:
    """The report the deployment ends with: ok and the interpreter, or the error."""
    spec = deployment.spec
    if spec.container is not None:  # a DockerImage: the image's Python runs the pipeline
        from .container import deploy_container

        built = deploy_container(spec, deployment.workdir, deployment.logs)
        if built.notice is None:
            return _ended(deployment, ok=built.error is None, error=built.error, container=built.container,
                          commands=built.commands, skipped=built.reused)
        deployment.report = _ended(deployment, notice=built.notice)  # no engine here: netunicorn's default runs as shell
    wanted, here = spec.python, "{}.{}".format(*sys.version_info[:2])
    if wanted and wanted != here:
        return _ended(deployment, error=(
            f"host {deployment.node} has Python {here} ({sys.executable}) but the controller has Python {wanted}; "
            f"pipelines are pickled for Python {wanted}: set ansible_python_interpreter to a Python {wanted} "
            "on this host"))
    if not spec.commands:
        return _ended(deployment, ok=True, interpreter=sys.executable)
    os.makedirs(os.path.dirname(deployment.env_dir), exist_ok=True)
    with open(deployment.env_dir + ".lock", "w") as lock:
        if not _lock_within(lock, deployment.deadline):  # another run deploying the same environment now
            return _ended(deployment, error=f"{deployment.node}: another run kept deploying the same environment "
                                            f"past this deployment's time limit ({spec.time_limit} s)")
        return _deploy_locked(deployment)


def _lock_within(lock: IO[str], deadline: float | None) -> bool:
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def _deploy_locked(deployment: Deployment) -> DeployReport:
    deployment.report = _ended(deployment, environment=deployment.env_dir)
    key = _environment_key(deployment.spec)
    marker = os.path.join(deployment.env_dir, ENVIRONMENT_MARKER)
    if not deployment.spec.redeploy and _read_text(marker) == key:
        return _ended(deployment, ok=True, skipped=True, interpreter=deployment.interpreter)
    shutil.rmtree(deployment.env_dir, ignore_errors=True)
    shutil.rmtree(deployment.logs, ignore_errors=True)
    os.makedirs(deployment.logs, exist_ok=True)
    error = _create_environment(deployment)
    if error is None:
        error = _run_requirements(deployment)
    if error is not None:
        return _ended(deployment, error=error)
    with open(marker, "w") as handle:
        handle.write(key)
    return _ended(deployment, ok=True, interpreter=deployment.interpreter)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _create_environment(deployment: Deployment) -> str | None:
    """Create the virtual environment; the error, if that failed."""
    created = subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", deployment.env_dir],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    if created.returncode == 0:
        return None
    tail = created.stdout[-_TAIL:].decode("utf-8", "replace").strip()
    return (f"host {deployment.node}: cannot create a virtual environment with {sys.executable} -m venv "
            f"(exit {created.returncode}): {tail}; on Debian/Ubuntu install python3-venv")


def _requirement_environment(deployment: Deployment) -> dict[str, str]:
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = deployment.env_dir
    env["PATH"] = os.path.join(deployment.env_dir, "bin") + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONHOME", None)
    env["DEBIAN_FRONTEND"] = "noninteractive"  # apt and debconf never ask (the node may say otherwise)
    env.update(deployment.spec.environment_variables)
    env[MARKER_VARIABLE] = deployment.marker
    return env


def _run_requirements(deployment: Deployment) -> str | None:
    """Run every requirement in order with /bin/sh, stopping at the first failing one; its error."""
    commands = deployment.spec.commands
    env = _requirement_environment(deployment)
    for number, command in enumerate(commands):
        entry = _run_requirement(deployment, number, command, env)
        deployment.report = _ended(deployment, commands=(*deployment.report.commands, entry))
        if entry.rc != 0 or entry.timed_out is not None:
            deployment.report = _ended(deployment, failed_command=clip(command, COMMAND_CHARS), failed_rc=entry.rc)
            return _requirement_error(deployment, f"{number + 1}/{len(commands)}", entry)
    return None


def _requirement_error(deployment: Deployment, place: str, entry: CommandRun) -> str:
    """What went wrong with a requirement: the command, how it ended, the tail of its output, a hint."""
    tail = (entry.output_tail or "").rstrip()
    limit = entry.timed_out
    if limit is not None and entry.limit == "requirement":
        ended = f"did not finish within {limit:g} s (--requirement-timeout); its processes were stopped"
    elif limit is not None:
        ended = (f"did not finish within the node's time limit of {float(deployment.spec.time_limit or 0):g} s "
                 "(--run-timeout), which covers deployment and pipeline; its processes were stopped")
    else:
        ended = f"failed with exit code {entry.rc}"
    hint = next((fix for needles, fix in WAITED_FOR_INPUT if any(needle in tail for needle in needles)), None)
    message = f"requirement {place} on {deployment.node} {ended}: {entry.command}"
    if hint:
        message += f"\n{hint}"
    return message + (f"\n{tail}" if tail else "")


def _time_left(deployment: Deployment) -> tuple[float | None, str]:
    """Seconds the next requirement may run, and which limit that is."""
    per_command = deployment.spec.requirement_timeout
    left = None if deployment.deadline is None else max(0.0, deployment.deadline - time.monotonic())
    if per_command is not None and (left is None or float(per_command) <= left):
        return float(per_command), "requirement"
    return left, "deployment"


def _run_requirement(deployment: Deployment, number: int, command: str, env: dict[str, str]) -> CommandRun:
    started = time.time()
    log_path = os.path.join(deployment.logs, f"{number:03d}.log")
    timeout, limit = _time_left(deployment)
    timed_out: float | None = None
    with open(log_path, "wb") as log:
        # its own session: no terminal to prompt on (sudo fails at once instead of waiting for a password)
        process = subprocess.Popen(
            ["/bin/sh", "-c", command], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=deployment.env_dir,  # side effects in the folder stay with the environment
            start_new_session=True,
        )
        try:
            rc = process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_marked(deployment.marker, also=[process.pid])
            rc, timed_out = process.wait(), round(timeout or 0.0, 3)
    return CommandRun(command=clip(command, COMMAND_CHARS), start=started, end=time.time(), rc=rc,
                      log=os.path.relpath(log_path, deployment.workdir), output_tail=output_tail(log_path),
                      timed_out=timed_out, limit=limit if timed_out is not None else None)


def output_tail(log_path: str) -> str:
    """The last characters of a command's output (its log), as a report keeps them."""
    with open(log_path, "rb") as log:
        log.seek(max(0, os.path.getsize(log_path) - _TAIL))
        return log.read().decode("utf-8", "replace")
