"""A run's SSH connection masters, and the private folder of their sockets.

Every SSH connection of a run goes through a master (``ControlMaster=auto``,
``ControlPersist``) whose socket is in the run's own control folder: a short path of its
own (a Unix socket path is limited to about 100 bytes, too few for a run folder), never
shared with another run or with the user's own Ansible (a master another run opened could
carry that run's flag tunnel, or a link that died since).

The folder is ``<base>/unicorn-ansible-<uid>/ssh-<12 hex of the run folder's path>`` (see
``sockets``: the base is ``$XDG_RUNTIME_DIR`` or the temporary folder). Its parent is this
user's own, created 0700 and checked before every step, so no other local user can create
the folder first and put a master of theirs in it (a fake master is handed the host
commands, the become password typed into their terminal and their answers): the names
inside need not be secret. The folder itself is created and checked by us before every step
that connects (never left for Ansible or ssh to create), and handed to Ansible per step as
``ansible_control_path_dir`` (a variable: it overrides the folder a run compiled by an
older unicorn-ansible names in its settings, and the inventory's). When a step of the run
ends (its end, a cancel, Ctrl-C) its masters are asked to stop, so no ssh process of the run
stays behind for ControlPersist's 120 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import stat
import subprocess
import time
from pathlib import Path

from .rundir import RunDir
from .sockets import own_folder, private_folder, user_folder, user_folder_path

#: the variable that gives Ansible's ssh connection the step's control folder
CONTROL_DIR_VAR = "ansible_control_path_dir"
#: seconds one `ssh -O stop` may take (it only talks to the local master)
STOP_SECONDS = 5
#: masters asked to stop at once (a run of 300 hosts has 300)
STOP_TOGETHER = 32


def _folder_name(run: RunDir) -> str:
    """The run's control folder's name: one per run folder, short (the socket path's limit)."""
    return "ssh-" + hashlib.sha256(str(Path(run.path).resolve()).encode()).hexdigest()[:12]


def control_dir(run: RunDir) -> Path:
    """Where the run's control folder is (not created here)."""
    return user_folder_path() / _folder_name(run)


def own_control_dir(run: RunDir) -> Path:
    """The run's control folder, created by us (0700) or checked to be ours and private, inside this
    user's checked folder; a RunError naming the folder and the fix otherwise."""
    return own_folder(user_folder() / _folder_name(run), "the SSH control folder")


def control_vars(run: RunDir) -> dict[str, str]:
    """The variables a step's play gets so its SSH masters are in the run's checked control folder."""
    return {CONTROL_DIR_VAR: str(own_control_dir(run))}


def close_masters(run: RunDir) -> int:
    """Ask each master of the run to stop (it ends once the sessions it still carries end;
    idle, at once) and remove the control folder; return how many were asked."""
    folder = control_dir(run)
    if not (private_folder(folder.parent) and private_folder(folder)):
        return 0  # not ours: nothing of the run's is in it (it was refused before the step)
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
