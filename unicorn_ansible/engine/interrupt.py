"""Ctrl-C and SIGTERM while a play runs: noted, so the play is stopped as a cancel stops it.

Python's default would raise KeyboardInterrupt out of ansible-runner and leave
ansible-playbook, its workers and their SSH sessions running. Instead the signal is
noted; the playbook runner sees it (its cancel callback), kills ansible-playbook's
process group, and the lifecycle then cancels the run on the hosts. A second signal
has the default effect.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

#: what signal.signal takes and gives back: a function, SIG_DFL or SIG_IGN, None (set outside Python)
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignal:
    """Whether (and which) stop signal arrived."""

    def __init__(self) -> None:
        self.number: int | None = None

    @property
    def arrived(self) -> bool:
        return self.number is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.number).name if self.number else ""


@contextmanager
def noting_stop_signals() -> Iterator[StopSignal]:
    """Note SIGINT and SIGTERM instead of dying of them (in the main thread; elsewhere signals
    are not ours to handle and nothing changes)."""
    noted = StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    previous: dict[int, Handler] = {}

    def note(number: int, frame: FrameType | None) -> None:
        noted.number = number
        for each, handler in previous.items():  # a second signal: the default effect
            signal.signal(each, handler)

    for number in STOP_SIGNALS:
        previous[number] = signal.signal(number, note)
    try:
        yield noted
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
