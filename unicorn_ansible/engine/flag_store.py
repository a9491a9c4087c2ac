"""The flags of one run: values in memory, written through to ``flags.json`` in the run folder.

Everything a request carries is checked here before it touches the store: names and texts of
bounded length, 64-bit integers, finite and bounded waits, JSON of bounded nesting. A refused
request changes nothing and gets one error message; the store and ``flags.json`` stay as they were.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from ..model.flags import INT_MAX, INT_MIN, MAX_NAME, MAX_TEXT, FlagError, FlagValues
from ..node import wire
from ..node.wire import JSONValue, WireError
from .rundir import RunDir, write_json

MAX_FLAGS = 1000
MAX_DEPTH = 8
MAX_WAIT = 600.0


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > 19:
        raise FlagError("integers are 64-bit (from -2**63 to 2**63-1)")
    return int(digits)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise FlagError(f"{text} is not a finite number")
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise FlagError(f"{name} is not a number a flag request may carry")


def parse_json(data: bytes) -> JSONValue:
    """JSON from a peer, by the wire's one bounded parser: at most MAX_DEPTH levels, 64-bit
    integers, finite numbers only (callers bound its size)."""
    try:
        return wire.parse_json(data, "a request", len(data), depth=MAX_DEPTH, parse_int=_parse_int,
                               parse_float=_parse_float, parse_constant=_refuse_constant)
    except WireError as exc:
        raise FlagError(str(exc)) from None


def check_name(name: object) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or "\0" in name:
        raise FlagError(f"a flag name is a text of 1 to {MAX_NAME} characters")
    return name


def check_int(number: object, what: str = "int_value") -> int:
    if isinstance(number, bool) or not isinstance(number, int) or not INT_MIN <= number <= INT_MAX:
        raise FlagError(f"{what} must be a 64-bit integer")
    return number


def check_value(value: object) -> FlagValues:
    if not isinstance(value, dict):
        raise FlagError('a flag value is {"text_value": ..., "int_value": ...}')
    text, number = value.get("text_value"), value.get("int_value")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT):
        raise FlagError(f"text_value must be null or a text of at most {MAX_TEXT} characters")
    return FlagValues(text, 0 if number is None else check_int(number))


def check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 10 * MAX_WAIT:
        raise FlagError(f"'timeout' must be a number of seconds from 0 to {10 * MAX_WAIT:g}")
    return min(float(timeout), MAX_WAIT)


def check_wait(message: Mapping[str, object]) -> tuple[str, FlagValues, float]:
    """The parts of a 'wait' request: the flag, the value waited for, seconds (at most MAX_WAIT)."""
    return check_name(message.get("name")), check_value(message.get("value")), check_timeout(
        message.get("timeout", 60))


def _load(path: Path) -> dict[str, FlagValues]:
    try:
        stored = parse_json(path.read_bytes())
        if not isinstance(stored, dict):
            return {}
        return {check_name(name): check_value(value) for name, value in stored.items()}
    except (OSError, ValueError, TypeError, FlagError):
        return {}


class FlagStore:
    """Flags of one run, written through to ``flags.json``; safe to share between threads."""

    def __init__(self, run_dir: Path) -> None:
        self.path = RunDir(run_dir).flags_file
        self.lock = threading.Lock()
        self.flags = _load(self.path)

    def _put(self, name: str, value: FlagValues) -> FlagValues:
        if name not in self.flags and len(self.flags) >= MAX_FLAGS:
            raise FlagError(f"a run holds at most {MAX_FLAGS} flags")
        self.flags[name] = value
        write_json(self.path, {key: flag.dict() for key, flag in self.flags.items()}, 0o600, sort_keys=True)
        return value

    def get(self, name: str) -> FlagValues | None:
        with self.lock:
            return self.flags.get(name)

    def set(self, name: str, value: FlagValues) -> FlagValues:
        with self.lock:
            return self._put(name, value)

    def add(self, name: str, by: int) -> FlagValues:
        with self.lock:
            current = self.flags.get(name) or FlagValues()
            total = current.int_value + by
            if not INT_MIN <= total <= INT_MAX:
                raise FlagError(f"flag {name!r} would leave the 64-bit range ({current.int_value} + {by})")
            return self._put(name, FlagValues(current.text_value, total))

    def all(self) -> dict[str, dict[str, str | int | None]]:
        with self.lock:
            return {name: value.dict() for name, value in self.flags.items()}

    def handle(self, message: object) -> dict[str, object]:
        """Answer one request (get, set, add, list; a wait is answered at once with what is there)."""
        if not isinstance(message, dict):
            raise FlagError("a request is a JSON object")
        op = message.get("op")
        if op == "list":
            return {"ok": True, "flags": self.all()}
        name = check_name(message.get("name"))
        if op == "get":
            value = self.get(name)
        elif op == "set":
            value = self.set(name, check_value(message.get("value")))
        elif op == "add":
            value = self.add(name, check_int(message.get("by", 1), "'by'"))
        elif op == "wait":
            name, wanted, _ = check_wait(message)
            if self.get(name) != wanted:
                return {"ok": False, "error": "timeout"}
            value = wanted
        else:
            raise FlagError(f"unknown operation {str(op)[:40]!r}")
        return {"ok": True, "value": None if value is None else value.dict()}
