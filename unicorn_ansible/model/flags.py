"""Flags: named values that tasks on different nodes, the client and the CLI share during a run.

A flag holds a text and an integer (netunicorn's ``FlagValues``). The store lives on the
controller while the run's execution play runs (``engine/flag_server.py``); tasks reach it through
the SSH connection Ansible already has (a reverse tunnel on the host's loopback), so hosts
behind NAT need no way back to the controller. Task code uses the functions below or the
ready-made tasks (netunicorn's SetFlagTask, GetFlagTask, WaitForExactFlagResultTask,
AtomicIncrementFlagTask, AtomicDecrementFlagTask).

This module travels to hosts inside the pickled pipeline: it uses the standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, cast

from .task import Task

if TYPE_CHECKING:
    from ..node.wire import JSONObject, JSONValue

ENDPOINT_VARIABLE = "UNICORN_FLAGS"
TOKEN_VARIABLE = "UNICORN_FLAGS_TOKEN"

# The wire protocol (the store is engine/flag_server.py; it imports these). The client speaks first;
# the token itself never crosses the connection, each side proves it knows it:
#   client: "unicorn-flags/1 NONCE_C\n"
#   store:  "NONCE_S PROOF\n"       PROOF = mac("store", NONCE_C, NONCE_S): the store knows the token
#   client: "MAC REQUEST-JSON\n"    MAC = mac("request", NONCE_C, NONCE_S, REQUEST-JSON)
#   store:  "MAC ANSWER-JSON\n"     MAC = mac("answer", NONCE_C, NONCE_S, ANSWER-JSON)
# Nothing is sent to a listener that cannot give PROOF, and an answer whose MAC is wrong is refused,
# so whoever binds a host's port first learns nothing and cannot forge values.
HELLO = b"unicorn-flags/1 "
NONCE_BYTES = 16
MAX_LINE = 1 << 16        # a request or an answer of one flag (lists are longer: see MAX_ANSWER)
MAX_ANSWER = 1 << 24      # the whole store, as 'list' returns it
MAX_TEXT = 8192           # characters of a flag's text
MAX_NAME = 200
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
BUSY = b"busy\n"          # the store had too many connections waiting: try again (nothing was done)


def mac(token: str, kind: str, nonce_client: bytes, nonce_store: bytes, data: bytes = b"") -> bytes:
    """The hex HMAC-SHA256 of one protocol step, bound to both nonces of this connection."""
    message = b"|".join((kind.encode(), nonce_client, nonce_store, data))
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest().encode()


class FlagError(RuntimeError):
    """A flag operation failed: no flag store, or it refused the request."""


@dataclass
class FlagValues:
    """A flag's value: a text, an integer (0 unless set), or both."""

    text_value: str | None = None
    int_value: int = 0

    def __post_init__(self) -> None:
        """Validate and coerce as netunicorn's pydantic model does (a ValueError otherwise)."""
        if self.text_value is not None and not isinstance(self.text_value, str):
            raise ValueError(f"FlagValues text_value: input should be a valid string, got {self.text_value!r}")
        self.int_value = _valid_int(self.int_value)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> FlagValues:
        # the constructor checks the text; the integer as the constructor takes one (0 unless set)
        return cls(cast("str | None", data.get("text_value")), _valid_int(data.get("int_value") or 0))

    def dict(self) -> dict[str, str | int | None]:  # pydantic's name, as netunicorn's FlagValues has it
        return asdict(self)

    def __eq__(self, other: object) -> bool:
        """Equal to any FlagValues of the same values, netunicorn's (a pydantic model) included:
        notebooks compare what the client returns with ``FlagValues(...)`` of either import."""
        if type(other).__name__ != "FlagValues":
            return NotImplemented
        return (getattr(other, "text_value", None), getattr(other, "int_value", None)) == \
            (self.text_value, self.int_value)

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq is


def _valid_int(value: object) -> int:
    """pydantic's lax int: ints and bools, integral floats, strings of an integer."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    raise ValueError(f"FlagValues int_value: input should be a valid integer, got {value!r}")


def _address(endpoint: str) -> tuple[int, str | tuple[str, int], str]:
    kind, _, where = endpoint.partition(":")
    if kind == "unix":
        return socket.AF_UNIX, where, where
    if kind == "tcp":
        host, _, port = where.rpartition(":")
        if port.isdigit():
            return socket.AF_INET, (host, int(port)), where
    raise FlagError(f"flag store address {endpoint!r} is not unix:PATH or tcp:HOST:PORT")


class _Busy(Exception):
    """The store dropped this connection before it read the request: nothing was done, try again."""


def _connect(endpoint: str, timeout: float | None) -> socket.socket:
    family, address, where = _address(endpoint)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except BlockingIOError:  # the store's queue of new connections is full: a moment
        sock.close()
        raise _Busy() from None
    except OSError as exc:
        sock.close()
        raise _unreachable(where, exc) from exc
    return sock


_NO_STORE = ("flags work while 'unicorn-ansible run' (or the client's start_execution) runs, over the SSH "
             "connection's reverse tunnel (the host's sshd must allow TCP forwarding); a run by hand with plain "
             "ansible-playbook has no flag store")


def _unreachable(where: str, exc: OSError) -> FlagError:
    return FlagError(f"cannot reach the run's flag store at {where} ({exc.strerror or exc}); {_NO_STORE}")


def _read_line(sock: socket.socket, limit: int) -> bytes:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise FlagError("the flag store's answer is too long")
    return bytes(data)


def _greet(sock: socket.socket, token: str) -> tuple[bytes, bytes]:
    """The handshake: the store proves it knows the token before anything else is sent."""
    nonce_client = secrets.token_hex(NONCE_BYTES).encode()
    try:
        sock.sendall(HELLO + nonce_client + b"\n")
        greeting = _read_line(sock, 256)
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise _Busy() from exc
    if greeting in (b"", BUSY):
        raise _Busy()
    nonce_store, _, proof = greeting.strip().partition(b" ")
    if not hmac.compare_digest(proof, mac(token, "store", nonce_client, nonce_store)):
        raise FlagError("the flag store's proof does not match this task's token: something other than the run's "
                        "store listens on its address, or the token is not this run's (nothing was sent)")
    return nonce_client, nonce_store


def _exchange(sock: socket.socket, body: bytes, token: str) -> JSONObject:
    nonce_client, nonce_store = _greet(sock, token)
    try:
        sock.sendall(mac(token, "request", nonce_client, nonce_store, body) + b" " + body + b"\n")
        line = _read_line(sock, MAX_ANSWER)
    except (ConnectionResetError, BrokenPipeError):
        line = b""
    if not line:
        raise FlagError("the flag store closed the connection without an answer")
    signature, _, answer = line.strip().partition(b" ")
    if not hmac.compare_digest(signature, mac(token, "answer", nonce_client, nonce_store, answer)):
        raise FlagError("the flag store's answer is not authenticated by the run's token (refused)")
    reply: JSONValue = json.loads(answer)
    if not isinstance(reply, dict):
        raise FlagError("the flag store's answer is not a JSON object (refused)")
    if reply.get("retry"):  # the store, authenticated, says it dropped the request unread
        raise _Busy()
    return reply


def request(message: Mapping[str, object], endpoint: str | None = None, token: str | None = None,
            timeout: float | None = 30.0) -> JSONObject:
    """Send one request to the flag store and return its answer (a dict with ``ok``)."""
    endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE)
    if not endpoint:
        raise FlagError("no flag store: flags are available to tasks run by unicorn-ansible "
                        f"(${ENDPOINT_VARIABLE} is not set)")
    token = token if token is not None else os.environ.get(TOKEN_VARIABLE, "")
    body = json.dumps(message).encode()
    if len(body) >= MAX_LINE - 100:
        raise FlagError(f"a flag request is at most {MAX_LINE} bytes (a text at most {MAX_TEXT} characters)")
    for attempt in range(40):
        try:
            with _connect(endpoint, timeout) as sock:
                answer = _exchange(sock, body, token)
            break
        except _Busy:  # dropped before the store read the request: nothing happened
            time.sleep(min(0.01 * (attempt + 1), 0.25))
        except TimeoutError as exc:
            raise FlagError(f"the flag store did not answer within {timeout:g} s; {_NO_STORE}") from exc
    else:
        raise FlagError("the flag store kept closing connections without answering (too many at once, or no "
                        f"store behind the tunnel); {_NO_STORE}")
    if not answer.get("ok") and answer.get("error") != "timeout":
        raise FlagError(f"flag store: {answer.get('error', 'request refused')}")
    return answer


def _flag_of(answer: JSONObject) -> FlagValues:
    """The flag value a store's answer holds."""
    value = answer.get("value")
    if not isinstance(value, dict):
        raise FlagError("the flag store's answer holds no flag value (refused)")
    return FlagValues.from_dict(value)


def get_flag(name: str) -> FlagValues | None:
    """The flag's value, or None if it was never set."""
    answer = request({"op": "get", "name": name})
    return None if answer["value"] is None else _flag_of(answer)


def set_flag(name: str, values: FlagValues) -> FlagValues:
    """Set the flag (both fields) and return its new value."""
    if values.text_value is None and values.int_value is None:
        raise ValueError("a flag needs a text_value or an int_value")
    return _flag_of(request({"op": "set", "name": name, "value": asdict(values)}))


def increment_flag(name: str, by: int = 1) -> FlagValues:
    """Atomically add ``by`` to the flag's integer (an unset flag counts from 0); return the new value."""
    return _flag_of(request({"op": "add", "name": name, "by": int(by)}))


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
            return _flag_of(answer)
    current = get_flag(name)
    raise TimeoutError(
        f"flag {name!r} did not become {values} within {float(timeout):g} s "
        f"(it is {current if current is not None else 'not set'})"
    )


class SetFlagTask(Task):
    """Set a flag to ``flag_values``; returns the flag's new value."""

    def __init__(self, flag_name: str, flag_values: FlagValues, *args: str | None, **kwargs: str | None) -> None:
        if flag_values.int_value is None and flag_values.text_value is None:
            raise ValueError("Either int_value or text_value must be set")
        self.flag_name = flag_name
        self.flag_values = flag_values
        super().__init__(*args, **kwargs)

    def run(self) -> FlagValues:
        return set_flag(self.flag_name, self.flag_values)


class GetFlagTask(Task):
    """Read a flag; fails if it was never set."""

    def __init__(self, flag_name: str, *args: str | None, **kwargs: str | None) -> None:
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

    def __init__(self, flag_name: str, values: FlagValues, sleep_time: float = 1, attempts: int | None = None,
                 *args: str | None, timeout: float | None = None, **kwargs: str | None) -> None:
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
    def __init__(self, flag_name: str, operation: str, *args: str | None, **kwargs: str | None) -> None:
        if operation not in ("increment", "decrement"):
            raise ValueError(f"operation must be 'increment' or 'decrement', got {operation!r}")
        self.flag_name = flag_name
        self.operation = operation
        super().__init__(*args, **kwargs)

    def run(self) -> FlagValues:
        return increment_flag(self.flag_name, 1 if self.operation == "increment" else -1)


class AtomicIncrementFlagTask(_AtomicOperationFlagTask):
    """Add 1 to a flag's integer, atomically; returns the new value."""

    def __init__(self, flag_name: str, *args: str | None, **kwargs: str | None) -> None:
        super().__init__(flag_name, "increment", *args, **kwargs)


class AtomicDecrementFlagTask(_AtomicOperationFlagTask):
    """Subtract 1 from a flag's integer, atomically; returns the new value."""

    def __init__(self, flag_name: str, *args: str | None, **kwargs: str | None) -> None:
        super().__init__(flag_name, "decrement", *args, **kwargs)
