"""Every process a pipeline or a deployment started, found by a marker in its environment.

Each task process, and each requirement, runs with ``UNICORN_PIPELINE=<marker>`` in its
environment, so every process it starts inherits it: in a new session, after a double fork,
reparented to PID 1 alike. A sweep reads ``/proc/<pid>/environ`` of the processes it may
signal and stops those carrying the marker. A task that keeps its processes
(``Task.keep_processes``) gives them another value, so no sweep finds them. A process that
clears its own environment (``env -i``) escapes the marker; its process group does not
escape the executor's kill of a stopped task.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterable

from .protocol import MARKER_VARIABLE
from .wire import StoppedProcess

#: a sweep looks again this many times for processes forked while it stopped others
_ROUNDS = 5
#: characters of a stopped process's command line a report keeps
_COMMAND_CHARS = 200


def new_marker() -> str:
    """A marker no other pipeline or deployment on the host has."""
    return secrets.token_hex(8)


def kept(marker: str) -> str:
    """The value a task that keeps its processes gives them instead of ``marker``."""
    return f"{marker}-kept"


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:  # gone, or not ours to read
        return b""


def command_line(pid: int) -> str:
    text = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return text[:_COMMAND_CHARS] or f"pid {pid}"


def marked_processes(marker: str) -> list[int]:
    """The live processes whose environment carries ``marker`` (never this process)."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and needle in _read(f"/proc/{entry}/environ").split(b"\0"):
            found.append(int(entry))
    return found


def _signal(pids: Iterable[int], number: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, number)
        except (ProcessLookupError, PermissionError):
            continue


def _alive(pids: Iterable[int]) -> list[int]:
    alive = []
    for pid in pids:
        stat = _read(f"/proc/{pid}/stat")
        if stat and stat.rsplit(b")", 1)[-1].split()[:1] != [b"Z"]:
            alive.append(pid)
    return alive


def stop_marked(marker: str, grace: float = 2.0, also: Iterable[int] = ()) -> tuple[StoppedProcess, ...]:
    """Stop every process carrying ``marker`` (and the processes ``also`` names): SIGTERM, up to
    ``grace`` seconds to exit, then SIGKILL, looking again for processes forked meanwhile.
    Return what was stopped: pid and command line of each."""
    # ``also`` first: a deployment hears of its cancel before its requirement's exit
    found = {pid: command_line(pid) for pid in [*_alive(also), *marked_processes(marker)]}
    if not found:
        return ()
    _signal(found, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(found) and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(_ROUNDS):
        targets = _alive(found) + [pid for pid in marked_processes(marker) if pid not in found]
        if not targets:
            break
        found.update((pid, found.get(pid) or command_line(pid)) for pid in targets)
        _signal(targets, signal.SIGKILL)
        time.sleep(0.05)
    return tuple(StoppedProcess(pid=pid, command=command) for pid, command in sorted(found.items()))
