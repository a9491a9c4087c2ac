"""A run's own controller: the Client's plays outlive the process that asked for them.

``Client.prepare_experiment`` and ``start_execution`` return at once, and a notebook kernel that
restarts or a script that exits must not take the run with it (netunicorn's server goes on
whatever its client does). So each step is played by a controller process of its own::

    client ──Popen(start_new_session)──▶ python -m unicorn_ansible.engine.detached RUN STEP
              secrets on stdin (JSON)            │ reads them, forks, exits at once
              ◀── "started" / "error: ..." ──────┴──▶ the controller (no parent but init): claims
                  on stdout, one line                  the run in run.json under the lock, answers,
                                                       plays the step, records how it ended

The controller is in a session of its own, so a Ctrl-C in the notebook's terminal or a kill of
the kernel's process group never reaches it; a cancel reaches it the usual way (the run's
record: engine/lifecycle.py). Passwords typed by the user reach it on the pipe only, and stay in
its memory (never a file, an environment variable or a command line). Its own output goes to
the run folder's ``controller.log``.

The steps: ``deploy`` (the deployment play; the run is then ready) and ``execute`` (the execution
play, on the deployments that were prepared only: one whose requirements failed never starts,
as netunicorn skips an executor that is not prepared).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from ..errors import RunError, UnicornError
from ..home import private_files
from . import lifecycle
from .rundir import RunDir, RunStatus, executors

DEPLOY, EXECUTE = "deploy", "execute"
STEPS = (DEPLOY, EXECUTE)
#: the controller's answer once it owns the run (else ``error: <why>``)
STARTED = "started"
_ERROR = "error: "
#: bytes of secrets the controller reads at most (two passwords)
_MAX_SECRETS = 1 << 16


def start_controller(run: RunDir, step: str, secrets: lifecycle.Secrets | None = None) -> None:
    """Start the controller that plays ``step`` of ``run`` and return once it owns the run (its
    record names it and says the step began); a RunError with its reason if it refused."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}")
    with private_files(), open(run.controller_log, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(run.path), step], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log, start_new_session=True, close_fds=True, env=_controller_environment())
    assert process.stdin is not None and process.stdout is not None
    with process.stdin:
        process.stdin.write(_secrets_bytes(secrets or lifecycle.Secrets()))
    with process.stdout:
        answer = process.stdout.readline(4096).decode("utf-8", "replace").strip()
    process.wait()  # the first process forked the controller and ended: nothing is left to reap
    if answer == STARTED:
        return
    reason = answer[len(_ERROR):] if answer.startswith(_ERROR) else \
        f"the run's controller did not start (exit {process.returncode}); see {run.controller_log}"
    raise RunError(reason)


def _controller_environment() -> dict[str, str]:
    """This process's environment, with this package importable (a source checkout on sys.path)."""
    package_root = str(Path(__file__).resolve().parents[2])
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, environment.get("PYTHONPATH")) if p)
    return environment


def _secrets_bytes(secrets: lifecycle.Secrets) -> bytes:
    return json.dumps({"become_password": secrets.become_password,
                       "connection_password": secrets.connection_password}).encode()


def _read_secrets(stream: IO[bytes]) -> lifecycle.Secrets:
    data = json.loads(stream.read(_MAX_SECRETS) or b"{}")
    values = {key: data.get(key) for key in ("become_password", "connection_password")}
    return lifecycle.Secrets(**{key: value for key, value in values.items() if isinstance(value, str)})


def claim(run: RunDir, step: str) -> None:
    """Record that this process now plays ``step`` (a RunError if the run is not where it can)."""
    if step == DEPLOY:
        lifecycle.mark_preparing(run)
    else:
        lifecycle.mark_running(run, expected=RunStatus.READY)


def prepared_executors(run: RunDir) -> dict[str, list[str]]:
    """Host -> its deployments whose preparation succeeded, in the run's order: the execution play
    starts those only (netunicorn: "Executor is not prepared")."""
    prepared: dict[str, list[str]] = {}
    for executor, host in executors(run.record()).items():
        if run.node_status(executor).prepared:
            prepared.setdefault(host, []).append(executor)
    return prepared


def play(run: RunDir, step: str, secrets: lifecycle.Secrets) -> None:
    """Play ``step``; whatever it raises is recorded as how the run ended."""
    try:
        inventory = lifecycle.run_inventory(run)
        if step == DEPLOY:
            lifecycle.deploy(run, inventory, secrets=secrets)
            return
        prepared = prepared_executors(run)
        if not prepared:  # nothing to start: every deployment failed (their errors are theirs)
            lifecycle.settle(run, RunStatus.FINISHED, finished=time.time(), ansible_rc=0)
            return
        lifecycle.execute(run, inventory, secrets=secrets, only=prepared)
    except Exception as exc:  # recorded for get_experiment_status and `status`, never lost
        lifecycle.record_failure(run, exc)


def _answer(text: str) -> None:
    """The one line the starter waits for; then stdout points nowhere (the starter stops reading)."""
    os.write(1, (text.replace("\n", " ") + "\n").encode())
    _point_at_null(1)


def _point_at_null(fd: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, fd)
    os.close(null)


def main(argv: list[str] | None = None) -> int:
    folder, step = (argv if argv is not None else sys.argv[1:])[:2]
    secrets = _read_secrets(sys.stdin.buffer)
    _point_at_null(0)
    if os.fork():  # the starter waits for this first process only: it ends now, the controller goes on
        os._exit(0)
    run = RunDir(Path(folder))
    try:
        claim(run, step)
    except UnicornError as exc:
        _answer(f"{_ERROR}{exc}")
        return 1
    except Exception as exc:
        _answer(f"{_ERROR}{type(exc).__name__}: {exc}")
        return 1
    _answer(STARTED)
    play(run, step, secrets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
