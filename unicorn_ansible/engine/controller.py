"""The controller process of a run: who it is, whether it still lives, and the plays ending with it.

The controller (``unicorn-ansible run``, ``collect``, ``cancel``, a client) starts
ansible-playbook through ansible-runner and names itself in :data:`CONTROLLER_ENV`. If the
controller dies without cleaning up (``kill -9``, an OOM kill), the collector callback inside
ansible-playbook notices within a second and ends the play with its worker processes; the
executors on the hosts go on (``collect`` fetches their results later). A run's record keeps
the controller's identity so ``status`` can tell a run whose controller died from a running one.

Imports only the standard library: the callback plugin, loaded by ansible-playbook, imports it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TypedDict

#: the environment variable that names the controller to ansible-playbook: "<pid>:<start time>"
CONTROLLER_ENV = "UNICORN_ANSIBLE_CONTROLLER"
#: seconds between two looks at the controller
WATCH_INTERVAL = 0.5
#: seconds a delete lets a finished or cancelled run's controller take its results and end
CONTROLLER_GRACE = 60.0


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot; with the pid, a process's identity), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if len(fields) > 19 and fields[0] not in (b"Z", b"X") else None


class ControllerId(TypedDict):
    """A controller process as a run's record keeps it: its pid and start time (its identity)."""

    pid: int
    start_time: int | None


def this_controller() -> ControllerId:
    """This process, as a run's record keeps its controller."""
    return ControllerId(pid=os.getpid(), start_time=start_time(os.getpid()))


def controller_env() -> dict[str, str]:
    """The environment variable ansible-playbook gets so it ends with this controller."""
    me = this_controller()
    return {CONTROLLER_ENV: f"{me['pid']}:{me['start_time']}"}


def is_alive(controller: object) -> bool:
    """Whether the controller a record names still runs (the same process, not a reused pid)."""
    if not isinstance(controller, dict) or type(controller.get("pid")) is not int:
        return False
    return start_time(controller["pid"]) == controller.get("start_time")


def _end_this_play() -> None:
    """SIGTERM to ansible-playbook and its workers (its own process group when ansible-runner started it)."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGTERM)
    else:
        os.kill(os.getpid(), signal.SIGTERM)


def _watch(pid: int, started: int | None) -> None:
    while start_time(pid) == started and os.getppid() == pid:
        time.sleep(WATCH_INTERVAL)
    _end_this_play()


def end_with_controller() -> bool:
    """In ansible-playbook: end the play when the controller named in the environment dies.
    Nothing happens for a play run by hand (no controller named)."""
    named = os.environ.get(CONTROLLER_ENV, "")
    pid, _, started = named.partition(":")
    if not pid.isdigit() or not started.isdigit():
        return False
    threading.Thread(target=_watch, args=(int(pid), int(started)), name="unicorn-controller-watch",
                     daemon=True).start()
    return True
