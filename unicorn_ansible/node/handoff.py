"""How a task's Result travels from its process to the executor.

The task's process pickles its Result and sends it, with a JSON line of metadata
(type, kind, preview), on a datagram socket every task inherits: a small result
as one datagram (no file to create, read and delete), a larger one in a memory
file handed over with the message. Where neither works, in a file under ``tmp/``.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
from dataclasses import dataclass
from typing import IO

from returns.result import Failure, Result

from .files import atomic_file
from .journal import PreviousSteps
from .outcome import Runnable, call_task, dumps_result, preview, result_type
from .protocol import ARTIFACTS_ENV, SUCCESS, TaskKind
from .wire import PREVIEW_CHARS, WORD_CHARS, Part, WireError, parse_object

#: results up to this size travel as one datagram (Linux's default socket buffer takes ~200 KB)
RESULT_DATAGRAM_MAX = 64 * 1024


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ResultMeta(Part):
    """The line a task's process sends before its pickled Result: what the journal's header takes from it."""

    type: str
    kind: str = TaskKind.OK
    preview: str = ""
    seq: int | None = None  #: on the socket: whose Result it is

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ResultMeta:
        f = cls.fields_of(raw, source, lenient)
        return cls(type=f.text("type", WORD_CHARS), kind=f.text("kind", WORD_CHARS, default=TaskKind.OK),
                   preview=f.text("preview", PREVIEW_CHARS, default=""), seq=f.opt_integer("seq"),
                   extra=f.extra(cls.known()))

    @classmethod
    def of(cls, result: Result[object, object], kind: str, seq: int | None = None) -> ResultMeta:
        return cls(type=result_type(result), kind=kind, preview=preview(result), seq=seq)

    def line(self) -> bytes:
        return json.dumps(self.to_json()).encode() + b"\n"


def _meta(line: bytes) -> ResultMeta | None:
    """The metadata line a task's process sent; None if it is not one (that task then has no result)."""
    try:
        return ResultMeta.from_untrusted(parse_object(line, "a task's result"), "a task's result")
    except WireError:
        return None


@dataclass
class Handoff:
    """A task's Result as it arrived: its metadata and the pickled Result to copy into the journal."""

    meta: ResultMeta
    payload: IO[bytes]
    size: int
    by_socket: bool = False  # else a file under tmp/ may hold it: removed once journaled

    @classmethod
    def of(cls, result: Result[object, object], kind: TaskKind) -> Handoff:
        """A Result the executor made itself (a task stopped, crashed)."""
        data = dumps_result(result)
        return cls(ResultMeta.of(result, kind), io.BytesIO(data), len(data))


def _pickled(task: object, result: Result[object, object]) -> tuple[bytes, Result[object, object], TaskKind]:
    """The pickled Result; a Result that cannot be pickled becomes a Failure saying so."""
    kind = TaskKind.OK if result_type(result) == SUCCESS else TaskKind.FAILURE
    try:
        return dumps_result(result), result, kind
    except Exception as exc:
        print(f"[unicorn-ansible] the result cannot be pickled: {type(exc).__name__}: {exc}", file=sys.stderr)
        result = Failure(
            f"the result of task {getattr(task, 'name', '?')} cannot be pickled "
            f"({type(exc).__name__}: {exc}); return plain data (str, numbers, lists, dicts, bytes)"
        )
        return dumps_result(result), result, TaskKind.UNPICKLABLE


def _send(sender: socket.socket, line: bytes, payload: bytes, seq: int) -> bool:
    try:
        if len(payload) <= RESULT_DATAGRAM_MAX:
            sender.send(line + payload)
        else:  # a large result: in a memory file handed over with the message (no disk write)
            memory = os.memfd_create(f"unicorn-result-{seq}", os.MFD_CLOEXEC)
            try:
                with open(memory, "wb", closefd=False) as handle:
                    handle.write(payload)
                socket.send_fds(sender, [line], [memory])
            finally:
                os.close(memory)
        return True
    except (AttributeError, OSError):
        return False  # no memfd here, a smaller socket buffer than expected...: a file instead


def run_and_send(task: Runnable, previous: PreviousSteps, environment: dict[str, str], sender: socket.socket | None,
                 seq: int, result_path: str) -> None:
    """Body of a task's process: run it; send its Result on ``sender``, or, when that cannot
    take it, write it to ``result_path``."""
    os.environ.update(environment)
    try:
        task.previous_steps = previous  # type: ignore[attr-defined]  # a Task: netunicorn's attribute
        task.artifacts_dir = environment.get(ARTIFACTS_ENV)  # type: ignore[attr-defined]
    except Exception:  # a task class may forbid new attributes; it then has no previous steps
        pass
    payload, result, kind = _pickled(task, call_task(task))
    sys.stdout.flush()
    sys.stderr.flush()
    if sender is not None and _send(sender, ResultMeta.of(result, kind, seq).line(), payload, seq):
        return
    with atomic_file(result_path) as handle:  # one file: a JSON line, then the pickled Result
        handle.write(ResultMeta.of(result, kind).line())
        handle.write(payload)


def _open_result_file(path: str) -> Handoff | None:
    """A task's result file: positioned at the payload, with its meta; None if missing."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    line = handle.readline()
    meta = _meta(line)
    if meta is None:
        handle.close()
        return None
    return Handoff(meta, handle, os.fstat(handle.fileno()).st_size - len(line))


class ResultInbox:
    """The executor's end: results received, kept by task number until their task is reaped."""

    def __init__(self, tmp_dir: str) -> None:
        self.tmp_dir = tmp_dir
        self._receiving, self.sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._receiving.setblocking(False)
        self._arrived: dict[int, Handoff] = {}

    def fileno(self) -> int:
        return self._receiving.fileno()

    def result_path(self, seq: int) -> str:
        return os.path.join(self.tmp_dir, f"{seq}.result")

    def receive(self) -> None:
        """Every result message waiting: ``JSON meta line`` + the pickled Result, or, for a large
        one, the line and a memory file holding it."""
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._receiving, RESULT_DATAGRAM_MAX + 4096, 1)
            except (BlockingIOError, InterruptedError):
                return
            line, _, payload = data.partition(b"\n")
            meta = _meta(line)
            if meta is None or meta.seq is None:
                for fd in fds:
                    os.close(fd)
                continue  # not from one of our tasks: a task without a result is reported as such
            seq = meta.seq
            if fds:
                os.lseek(fds[0], 0, os.SEEK_SET)  # the sender's offset (the end) comes with the file
                self._arrived[seq] = Handoff(meta, os.fdopen(fds[0], "rb"), os.fstat(fds[0]).st_size, True)
            else:
                self._arrived[seq] = Handoff(meta, io.BytesIO(payload), len(payload), True)

    def take(self, seq: int) -> Handoff | None:
        """Task ``seq``'s Result (sent before it exited: in the queue by now), or None if it sent none."""
        self.receive()
        arrived = self._arrived.pop(seq, None)
        return arrived if arrived is not None else _open_result_file(self.result_path(seq))

    def discard(self, seq: int) -> None:
        """Drop what a killed task sent just before the kill (it is not used)."""
        self.receive()
        unused = self._arrived.pop(seq, None)
        if unused is not None:
            unused.payload.close()

    def close(self) -> None:
        self._receiving.close()
        self.sender.close()
