"""Flags: named values that tasks on different nodes, the client and the CLI share during a run.

A flag holds a text and an integer (netunicorn's ``FlagValues``). The store lives on the
controller while the run's execution play runs (``_flag_server``); tasks reach it through
the SSH connection Ansible already has (a reverse tunnel on the host's loopback), so hosts
behind NAT need no way back to the controller. Task code uses the functions below or the
ready-made tasks (netunicorn's SetFlagTask, GetFlagTask, WaitForExactFlagResultTask,
AtomicIncrementFlagTask, AtomicDecrementFlagTask).

This module travels to hosts inside the pickled pipeline: it uses the standard library only.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from .task import Task

ENDPOINT_VARIABLE = "UNICORN_FLAGS"
TOKEN_VARIABLE = "UNICORN_FLAGS_TOKEN"
MAX_MESSAGE = 1 << 20


class FlagError(RuntimeError):
    """A flag operation failed: no flag store, or it refused the request."""


@dataclass
class FlagValues:
    """A flag's value: a text, an integer (0 unless set), or both."""

    text_value: Optional[str] = None
    int_value: int = 0

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "FlagValues":
        return cls(data.get("text_value"), int(data.get("int_value") or 0))

    def dict(self) -> Dict[str, Any]:  # pydantic's name, as netunicorn's FlagValues has it
        return asdict(self)


def _connect(endpoint: str, timeout: Optional[float]) -> socket.socket:
    kind, _, where = endpoint.partition(":")
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: Any = where
    elif kind == "tcp":
        host, _, port = where.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = (host, int(port))
    else:
        raise FlagError(f"flag store address {endpoint!r} is not unix:PATH or tcp:HOST:PORT")
    sock.settimeout(timeout)
    try:
        for attempt in range(50):
            try:
                sock.connect(address)
                break
            except BlockingIOError:  # the store's queue of new connections is full: a moment
                if attempt == 49:
                    raise
                time.sleep(0.02 * (attempt + 1))
    except OSError as exc:
        sock.close()
        raise _unreachable(where, exc) from exc
    return sock


def _unreachable(where: str, exc: OSError) -> FlagError:
    return FlagError(
        f"cannot reach the run's flag store at {where} ({exc.strerror or exc}); flags work while "
        "'unicorn-ansible run' (or the client's start_execution) runs, over the SSH connection's "
        "reverse tunnel (the host's sshd must allow TCP forwarding); a run by hand with plain "
        "ansible-playbook has no flag store"
    )


def _exchange(sock: socket.socket, line: bytes) -> bytes:
    """Send one request line; the answer line."""
    sock.sendall(line)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_MESSAGE:
            raise FlagError("the flag store's answer is too long")
    return data


def request(message: Dict[str, Any], endpoint: Optional[str] = None, token: Optional[str] = None,
            timeout: Optional[float] = 30.0) -> Dict[str, Any]:
    """Send one request to the flag store and return its answer (a dict with ``ok``)."""
    endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE)
    if not endpoint:
        raise FlagError("no flag store: flags are available to tasks run by unicorn-ansible "
                        f"(${ENDPOINT_VARIABLE} is not set)")
    token = token if token is not None else os.environ.get(TOKEN_VARIABLE, "")
    with _connect(endpoint, timeout) as sock:
        try:
            data = _exchange(sock, json.dumps({**message, "token": token}).encode() + b"\n")
        except (ConnectionError, socket.timeout) as exc:  # a tunnel with no store behind it resets
            raise _unreachable(endpoint.partition(":")[2], exc) from exc
    if not data:
        raise FlagError(f"the flag store at {endpoint} closed the connection without an answer; a run by hand "
                        "with plain ansible-playbook has no flag store: flags work while 'unicorn-ansible run' runs")
    answer = json.loads(data)
    if not answer.get("ok") and answer.get("error") != "timeout":
        raise FlagError(f"flag store: {answer.get('error', 'request refused')}")
    return answer


def get_flag(name: str) -> Optional[FlagValues]:
    """The flag's value, or None if it was never set."""
    value = request({"op": "get", "name": name})["value"]
    return None if value is None else FlagValues.from_dict(value)


def set_flag(name: str, values: FlagValues) -> FlagValues:
    """Set the flag (both fields) and return its new value."""
    if values.text_value is None and values.int_value is None:
        raise ValueError("a flag needs a text_value or an int_value")
    return FlagValues.from_dict(request({"op": "set", "name": name, "value": asdict(values)})["value"])


def increment_flag(name: str, by: int = 1) -> FlagValues:
    """Atomically add ``by`` to the flag's integer (an unset flag counts from 0); return the new value."""
    return FlagValues.from_dict(request({"op": "add", "name": name, "by": int(by)})["value"])


def decrement_flag(name: str, by: int = 1) -> FlagValues:
    """Atomically subtract ``by`` from the flag's integer; return the new value."""
    return increment_flag(name, -int(by))


def wait_for_flag(name: str, values: FlagValues, timeout: float = 60.0) -> FlagValues:
    """Block until the flag equals ``values`` (text and integer); TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + float(timeout)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        step = min(left, 300.0)  # the store answers every few minutes at most: a cut link is noticed
        answer = request({"op": "wait", "name": name, "value": asdict(values), "timeout": step}, timeout=step + 30)
        if answer.get("ok"):
            return FlagValues.from_dict(answer["value"])
    current = get_flag(name)
    raise TimeoutError(
        f"flag {name!r} did not become {values} within {float(timeout):g} s "
        f"(it is {current if current is not None else 'not set'})"
    )


class SetFlagTask(Task):
    """Set a flag to ``flag_values``; returns the flag's new value."""

    def __init__(self, flag_name: str, flag_values: FlagValues, *args: Any, **kwargs: Any) -> None:
        if flag_values.int_value is None and flag_values.text_value is None:
            raise ValueError("Either int_value or text_value must be set")
        self.flag_name = flag_name
        self.flag_values = flag_values
        super().__init__(*args, **kwargs)

    def run(self) -> FlagValues:
        return set_flag(self.flag_name, self.flag_values)


class GetFlagTask(Task):
    """Read a flag; fails if it was never set."""

    def __init__(self, flag_name: str, *args: Any, **kwargs: Any) -> None:
        self.flag_name = flag_name
        super().__init__(*args, **kwargs)

    def run(self) -> FlagValues:
        value = get_flag(self.flag_name)
        if value is None:
            raise KeyError(f"flag {self.flag_name!r} is not set")
        return value


class WaitForExactFlagResultTask(Task):
    """Wait until a flag equals ``values``. netunicorn's ``sleep_time`` and ``attempts`` bound the
    wait to ``sleep_time * attempts`` seconds; ``timeout`` (seconds) sets it directly; with
    neither, it waits until the node's time limit."""

    def __init__(self, flag_name: str, values: FlagValues, sleep_time: float = 1, attempts: Optional[int] = None,
                 *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> None:
        self.flag_name = flag_name
        self.values = values
        self.sleep_time = sleep_time
        self.attempts = attempts
        self.timeout = timeout if timeout is not None else (
            sleep_time * attempts if attempts is not None else 365 * 86400.0)
        super().__init__(*args, **kwargs)

    def run(self) -> FlagValues:
        return wait_for_flag(self.flag_name, self.values, self.timeout)


class _AtomicOperationFlagTask(Task):
    def __init__(self, flag_name: str, operation: str, *args: Any, **kwargs: Any) -> None:
        if operation not in ("increment", "decrement"):
            raise ValueError(f"operation must be 'increment' or 'decrement', got {operation!r}")
        self.flag_name = flag_name
        self.operation = operation
        super().__init__(*args, **kwargs)

    def run(self) -> FlagValues:
        return increment_flag(self.flag_name, 1 if self.operation == "increment" else -1)


class AtomicIncrementFlagTask(_AtomicOperationFlagTask):
    """Add 1 to a flag's integer, atomically; returns the new value."""

    def __init__(self, flag_name: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(flag_name, "increment", *args, **kwargs)


class AtomicDecrementFlagTask(_AtomicOperationFlagTask):
    """Subtract 1 from a flag's integer, atomically; returns the new value."""

    def __init__(self, flag_name: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(flag_name, "decrement", *args, **kwargs)
