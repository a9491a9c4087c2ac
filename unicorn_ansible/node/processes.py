"""Task processes: forked, their output captured up to a cap, reaped, killed.

Each task runs in its own process (a fork of the executor, its own process
group), its stdout and stderr one pipe the executor reads into the task's log.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import os
import selectors
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: captured output is written to the log file in pieces of this size
_LOG_FLUSH = 256 * 1024


@dataclass
class CappedLog:
    """A task's log file: the first ``cap`` bytes of its output are kept, the rest counted."""

    path: str
    cap: int
    buffer: bytearray = field(default_factory=bytearray)
    logged: int = 0
    dropped: int = 0

    def add(self, chunk: bytes) -> None:
        room = self.cap - self.logged - len(self.buffer)
        if room > 0:
            self.buffer += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))
        if len(self.buffer) >= _LOG_FLUSH:
            self.flush()

    def flush(self, trailer: bytes = b"") -> None:
        if not self.buffer and not trailer:  # a task that printed nothing has no log file
            return
        with open(self.path, "ab") as handle:
            handle.write(self.buffer + trailer)
        self.logged += len(self.buffer)
        self.buffer.clear()

    def close(self) -> None:
        """Write what is left, with a line saying how much was dropped, if any."""
        trailer = b""
        if self.dropped:
            trailer = (f"\n[unicorn-ansible: output capped at {self.cap} bytes; "
                       f"{self.dropped} more bytes were dropped]\n").encode()
        self.flush(trailer)


#: the umask the node was started with (the node's own files are private; a task's files are as its user makes them)
TASK_UMASK_ENV = "UNICORN_NODE_TASK_UMASK"


def keep_files_private() -> None:
    """Every file and folder the node writes is its user's alone (0600, 0700); tasks get the user's umask back."""
    previous = os.umask(0o077)
    os.environ.setdefault(TASK_UMASK_ENV, str(previous))


def _stdio_to(out: int) -> None:
    """In a fork: stdin from /dev/null, stdout and stderr (and Python's) to ``out``."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    if null > 2:
        os.close(null)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)


def _become_task_process(write_fd: int) -> None:
    """In the fork: an own process group, the user's umask, stdin from /dev/null, stdout and stderr to the pipe."""
    os.setpgid(0, 0)
    umask = os.environ.pop(TASK_UMASK_ENV, "")
    if umask.isdigit():
        os.umask(int(umask))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _stdio_to(write_fd)
    os.close(write_fd)
    if faulthandler.is_enabled():  # a crash dump belongs in the task's log, not the parent's stderr
        faulthandler.enable(file=sys.stderr)


def fork_task(body: Callable[[], None]) -> tuple[int, int]:
    """Run ``body`` in a new process; return its pid and the read end of its output."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the task's own process
        try:
            os.close(read_fd)
            _become_task_process(write_fd)
            body()
        finally:
            os._exit(0)
    os.close(write_fd)
    return pid, read_fd


def _close_from(lowest: int) -> None:
    """Close every open descriptor from ``lowest`` up, as ``close_fds`` does: the open ones, listed
    (a loop up to the limit is a million calls on a host without close_range and a high limit)."""
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        os.closerange(lowest, max(lowest, os.sysconf("SC_OPEN_MAX")))
        return
    for fd in open_fds:
        if fd >= lowest:
            with contextlib.suppress(OSError):  # the listing's own descriptor is closed already
                os.close(fd)


#: what the end of the SSH session that starts an executor sends (the pty's hangup, Ansible's
#: interrupt and terminate): held while an executor is being detached, never delivered to it
_SESSION_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def session_signals_held() -> Iterator[None]:
    """Hold the session's signals in this thread while the body detaches an executor and records
    it: a session that ends in between (the controller killed as it starts the pipeline) can neither
    kill a child that is not in its own session yet, nor this process before it wrote the child's
    pid (a child nobody knows of would be started twice)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SESSION_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _drop_session_signals() -> None:
    """In a detached child, in its own session: discard the session's signals held for the old one
    (a signal set to be ignored is dropped while pending), then take them as before, unblocked."""
    for signum in _SESSION_SIGNALS:
        handler = signal.getsignal(signum)
        signal.signal(signum, signal.SIG_IGN)
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SESSION_SIGNALS)


def fork_detached(body: Callable[[], int], argv: list[str], out: int, env: dict[str, str], cwd: str) -> int:
    """Run ``body`` in a child of this process detached as ``subprocess.Popen(argv, start_new_session=True,
    close_fds=True)`` would start a new Python (its own session, stdin from /dev/null, stdout and stderr to
    ``out``, ``env`` its environment, ``argv`` its ``sys.argv``): the same interpreter without a second start;
    the child exits with ``body``'s return value. Returns the child's pid. Call it inside
    :func:`session_signals_held`: the child starts with them held and drops them once detached."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        _drop_session_signals()
        os.chdir(cwd)
        _stdio_to(out)
        _close_from(3)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = list(argv)
        code = body()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return 0  # never reached: the child exits above


@dataclass
class TaskProcess:
    """A task's running process: its output pipe, its log, how it ended."""

    pid: int
    fd: int
    seq: int  # the task's number on this node
    name: str
    log: CappedLog
    deadline: float | None  # monotonic time of its task timeout
    start: float = field(default_factory=time.time)
    eof: bool = False
    status: int | None = None  # waitpid's status once reaped
    killed_for: str | None = None  # why the executor killed it

    def read_output(self, selector: selectors.BaseSelector) -> None:
        """Read what the task wrote (once ready to read); at its end, stop watching the pipe."""
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            raise
        except OSError:
            chunk = b""
        if not chunk:
            self._close_output(selector)
            return
        self.log.add(chunk)

    def read_rest(self, selector: selectors.BaseSelector) -> None:
        """The task exited, but a process it started may hold its output open: take what is there."""
        os.set_blocking(self.fd, False)
        try:
            while not self.eof:
                self.read_output(selector)
        except BlockingIOError:
            self._close_output(selector)

    def _close_output(self, selector: selectors.BaseSelector) -> None:
        selector.unregister(self.fd)
        os.close(self.fd)
        self.eof = True

    def reap(self) -> None:
        """Record its exit status if it has exited (without waiting)."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.status = -1
            return
        if pid:
            self.status = status

    def kill(self, reason: str) -> None:
        self.killed_for = reason
        kill_group(self.pid)

    @property
    def running(self) -> bool:
        """Neither exited nor being killed."""
        return self.status is None and self.killed_for is None


class StartPacer:
    """When to start the next task of a stage: while fewer of the tasks started in the last
    ``window`` seconds are runnable than there are processors.

    A stage's tasks all start, but at the pace the processors take them: a burst of short
    tasks does not fork hundreds of processes that then wait for a processor, each holding
    its own copy of every page the executor wrote since (a few MB each); tasks that wait
    (sleep, network) are not runnable and do not hold the next ones back, and a task counts
    only in its first ``window`` seconds, so a busy one never stops a stage from starting."""

    def __init__(self, window: float = 0.2) -> None:
        self.window = window
        processors = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        self.limit = max(1, len(processors))
        self._recent: deque[tuple[TaskProcess, float]] = deque()

    def started(self, process: TaskProcess) -> None:
        self._recent.append((process, time.monotonic()))

    def busy(self) -> bool:
        """Whether the processors are taken by tasks just started."""
        horizon = time.monotonic() - self.window
        while self._recent and (self._recent[0][1] < horizon or self._recent[0][0].eof):
            self._recent.popleft()
        runnable = 0
        for process, _ in self._recent:
            if not process.eof and _runnable(process.pid):
                runnable += 1
                if runnable >= self.limit:
                    return True
        return False


def _runnable(pid: int) -> bool:
    """Whether process ``pid`` is running or waiting for a processor (state R in /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1][1:2] == b"R"
    except (OSError, IndexError):
        return False


def describe_exit(status: int | None) -> str:
    if status is None or status < 0:
        return "ended in an unknown way"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            label = signal.Signals(number).name
        except ValueError:
            label = f"signal {number}"
        return f"was killed by {label}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def kill_group(pid: int) -> None:
    """SIGKILL a task's process group (the task and what it started), or the task alone."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            continue


def kill_session(sid: int) -> None:
    """SIGKILL every process whose session is ``sid`` (the executor and all its tasks started)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def safe_file_name(name: str) -> str:
    """A task name as a file name: ASCII letters, digits, ``-_.`` (the outbox carries nothing else)."""
    cleaned = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in name)
    return cleaned[:80] or "task"
