"""A run's SSH connection masters.

Every SSH connection of a run goes through a master (``ControlMaster=auto``,
``ControlPersist``) whose socket is in the run's own control folder: a short path of its
own (a Unix socket path is limited to about 100 bytes, too few for a run folder), never
shared with another run or with the user's own Ansible (a master another run opened could
carry that run's flag tunnel, or a link that died since). When a step of the run ends
(its end, a cancel, Ctrl-C) its masters are asked to stop, so no ssh process of the run
stays behind for ControlPersist's 120 s.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import subprocess
import time
from pathlib import Path

from .flag_server import private_folder, socket_base
from .rundir import RunDir, read_json

#: the setting that names the run's control folder (in the run's env/envvars)
CONTROL_DIR_ENV = "ANSIBLE_SSH_CONTROL_PATH_DIR"
#: seconds one `ssh -O stop` may take (it only talks to the local master)
STOP_SECONDS = 5
#: masters asked to stop at once (a run of 300 hosts has 300)
STOP_TOGETHER = 32


def new_control_dir() -> str:
    """A fresh control folder for a run (Ansible creates it 0700 when it first connects)."""
    return str(socket_base() / f"unicorn-ansible-ssh-{os.getuid()}-{secrets.token_hex(6)}")


def control_dir(run: RunDir) -> Path | None:
    """The run's control folder, as its settings name it (None for a run compiled without one)."""
    value = (read_json(run.envvars_file) or {}).get(CONTROL_DIR_ENV)
    return Path(value) if isinstance(value, str) and value else None


def close_masters(run: RunDir) -> int:
    """Ask each master of the run to stop (it ends once the sessions it still carries end;
    idle, at once) and remove the control folder; return how many were asked."""
    folder = control_dir(run)
    if folder is None or not private_folder(folder):
        return 0
    sockets = [path for path in _entries(folder) if _is_socket(path)]
    for start in range(0, len(sockets), STOP_TOGETHER):  # each a short local exchange: many at once
        _stop_masters(sockets[start:start + STOP_TOGETHER])
    with contextlib.suppress(OSError):
        folder.rmdir()
    return len(sockets)


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False


def _stop_masters(paths: list[Path]) -> None:
    """``ssh -O stop`` for each master, all at once, each given STOP_SECONDS at most."""
    # -F /dev/null: the destination is a placeholder; the user's ssh config has no say here
    running = []
    for path in paths:
        command = ["ssh", "-F", "/dev/null", "-o", f"ControlPath={path}", "-O", "stop", "unicorn-ansible-master"]
        with contextlib.suppress(OSError):
            running.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + STOP_SECONDS
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
