"""Values and host texts as bounded, printable text: a task's preview on the host, every view on
the controller.

Both sides show values a host made, and a value is a graph, not a tree: ``a = [a, a]`` nested 34
times is 260 bytes of pickle and 2**34 lists written out. So the text of a value is written with
one budget of characters for the whole value (never a budget per level), and it stops where the
budget ends: its work is bounded by what it shows. No class's own ``__repr__`` runs (a dataclass's
generated one walks every shared reference again, and on the controller an instance's code is
the host's to choose): an instance is shown by its class name and state, read through the builtin
descriptors. Text from a host is shown with its control characters escaped (:func:`printable`),
so a value or a task name cannot retitle, clear or recolour the user's terminal.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import ipaddress
import pathlib
import types
import uuid
from collections.abc import Callable, Iterable
from typing import TypeVar, cast

#: characters of one string, items of one container, and levels of containers a value's text shows
STRING_CHARS = 2000
ITEMS = 200
LEVELS = 8
#: bytes shown in full up to this size (a longer one: its size and first bytes)
BYTES_SHOWN = 200
FILL = "..."

_PLAIN = (bool, int, float, complex, type(None), range, slice, type(Ellipsis), type(NotImplemented))
#: value types of the standard library whose own repr is short and runs no code of a host's choosing
_STDLIB_VALUES = frozenset({
    datetime.date, datetime.datetime, datetime.time, datetime.timedelta, datetime.timezone, decimal.Decimal,
    fractions.Fraction, uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
    ipaddress.IPv6Network, ipaddress.IPv4Interface, ipaddress.IPv6Interface, pathlib.PurePosixPath,
    pathlib.PosixPath, pathlib.PureWindowsPath,
})
_Class = TypeVar("_Class", bound=type)
#: the project's own classes whose __repr__ is bounded and shown as written (``trust_repr`` adds them)
_OWN_REPRS: set[type] = set()
_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"), tuple: ("(", ")"), set: ("{", "}"), frozenset: ("frozenset({", "})"),
    collections.deque: ("deque([", "])"),
}


def trust_repr(kind: _Class) -> _Class:
    """Show ``kind`` by its own ``__repr__``: only for the project's own classes (a refused result,
    an abbreviated one), whose repr is short and runs no code a host chose; used as a decorator."""
    _OWN_REPRS.add(kind)
    return kind


class _Escapes(dict[int, str]):
    """``str.translate``'s table: a character that is not printable to its Python escape (``\\x1b``,
    ``\\x07``, ``\\x9b``, ``\\u202e``...), a printable one to itself; each worked out once."""

    def __init__(self, keep: str) -> None:
        super().__init__((ord(c), c) for c in keep)

    def __missing__(self, code: int) -> str:
        c = chr(code)
        self[code] = text = c if c.isprintable() else repr(c)[1:-1]
        return text


_TEXT, _LINE = _Escapes("\n\t"), _Escapes("")


def printable(text: str) -> str:
    """Text from a host (a log, a value, an error, a task's name), safe for a terminal: every
    character that is not printable (ESC, BEL, CR, a C1 control such as CSI, a bidi control...)
    written as its Python escape, so what a host wrote reaches a terminal as text, never as a
    command (``ESC]0;title BEL`` retitles it, ``ESC[2J`` clears it, ``ESC[31m`` colours a fake
    line). Newlines and tabs are kept (a log's lines stay lines). Every view of host data writes
    through this or :func:`printable_line`."""
    if text.isprintable():
        return text
    return text.translate(_TEXT)


def printable_line(text: str) -> str:
    """``text`` as one printable line: its newlines escaped too (a table cell, a one-line error)."""
    if text.isprintable():
        return text
    return text.translate(_LINE)


class _Full(Exception):
    """The text reached its budget."""


class _Writer:
    """Writes one value's text into ``parts``, spending ``left`` characters in all."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.parts: list[str] = []

    def put(self, text: str) -> None:
        if len(text) > self.left:
            self.parts.append(text[:self.left])
            self.left = 0
            raise _Full
        self.parts.append(text)
        self.left -= len(text)

    def value(self, value: object, level: int) -> None:
        if self.left <= 0:
            raise _Full
        kind = type(value)
        if kind is str:
            self.string(value)  # type: ignore[arg-type]  # checked above
        elif kind in (bytes, bytearray):
            self.put(_bytes_text(value))  # type: ignore[arg-type]  # checked above
        elif kind in _PLAIN:
            self.put(_plain_text(value))
        elif kind in _BRACKETS or kind is dict:
            self.container(value, kind, level)
        elif kind in _STDLIB_VALUES or kind in _OWN_REPRS:
            self.put(printable_line(repr(value)[:STRING_CHARS]))
        else:
            self.instance(value, level)

    def string(self, text: str) -> None:
        shown = repr(text[:min(STRING_CHARS, self.left)])
        self.put(shown if len(text) <= STRING_CHARS else f"{shown}{FILL}")

    def container(self, value: object, kind: type, level: int) -> None:
        """A builtin container's members, read with the builtin's own methods (a subclass's never run)."""
        left, right = _BRACKETS.get(kind, ("{", "}"))
        size = _builtin_len(value, kind)
        if kind is tuple and size == 1:
            right = ",)"
        if not size:
            self.put(f"{kind.__name__}()" if kind in (set, frozenset) else left + right)
            return
        self.put(left)
        if level >= LEVELS:
            self.put(FILL)
        elif kind is dict:
            self.items(dict.items(value), level)  # type: ignore[arg-type]  # a dict, checked by the caller
        else:
            self.members(_builtin_iter(value, kind), size, level)
        self.put(right)

    def members(self, members: Iterable[object], size: int, level: int) -> None:
        for position, member in enumerate(members):
            if position == ITEMS:
                self.put(f", {FILL}({size - ITEMS} more)")
                return
            if position:
                self.put(", ")
            self.value(member, level + 1)

    def items(self, items: Iterable[tuple[object, object]], level: int, equals: str | None = None) -> None:
        """A dict's items (``key: value``), or an instance's state (``name=value`` with ``equals``)."""
        for position, (key, member) in enumerate(items):
            if position == ITEMS:
                self.put(f", {FILL}")
                return
            if position:
                self.put(", ")
            if equals is None:
                self.value(key, level + 1)
                self.put(": ")
            else:
                self.put(f"{printable_line(str(key))}{equals}")
            self.value(member, level + 1)

    def instance(self, value: object, level: int) -> None:
        """Anything else, shown by its class and what it holds, without running its code."""
        kind = type(value)
        name = printable_line(_class_name(kind))
        if isinstance(value, type):
            self.put(printable_line(type.__repr__(value)))
        elif kind is types.SimpleNamespace:  # as its own repr, read through its builtin attributes
            self.put("namespace(")
            self.items(((str(key), member) for key, member in vars(value).items()), level, equals="=")
            self.put(")")
        elif isinstance(value, enum.Enum):
            self.put(f"<{name}.{printable_line(str(value._name_))}: ")
            self.value(value._value_, level + 1)
            self.put(">")
        elif _inner_value(value) is not _NONE:  # a Result, a Maybe: as returns shows it
            self.container_of(name, _inner_value(value), level)
        elif isinstance(value, BaseException):
            args = BaseException.__dict__["args"].__get__(value)
            self.put(f"{name}(")
            self.members(args, len(args), level)
            self.put(")")
        elif isinstance(value, _SCALARS):  # a subclass of str, int, float: its builtin value
            self.put(f"{name}(")
            self.value(_builtin_scalar(value), level + 1)
            self.put(")")
        else:
            self.structure(value, kind, name, level)

    def container_of(self, name: str, inner: object, level: int) -> None:
        """A returns container: ``<Success: 1>``, ``<Failure: its text>``, ``<Nothing>``."""
        if name == "_Nothing":
            self.put("<Nothing>")
            return
        self.put(f"<{name}: ")
        if type(inner) is str:
            self.put(printable(inner[:STRING_CHARS * 5]))
        else:
            self.value(inner, level + 1)
        self.put(">")

    def structure(self, value: object, kind: type, name: str, level: int) -> None:
        """An instance as ``Name(field=value, ...)``, a builtin container's subclass as ``Name(members)``."""
        base = next((b for b in kind.__mro__ if b in _BRACKETS or b is dict), None)
        state = instance_state(value)
        if base is None and not state:
            self.put(f"<{name} object>")
            return
        self.put(f"{name}(")
        if level >= LEVELS:
            self.put(FILL)
        else:
            if base is not None:
                self.container(value, base, level)
            if state:
                if base is not None:
                    self.put(", ")
                self.items(_shown_fields(kind, state), level, equals="=")
        self.put(")")


_NONE = object()
_SCALARS = (str, int, float)


def _builtin_scalar(value: str | int | float) -> object:
    """The builtin value of a str, int or float subclass's instance, by the builtin's own method."""
    if isinstance(value, str):
        return str.__getitem__(value, slice(None))
    if isinstance(value, int):
        return int.__index__(value)
    return float.__float__(value)


def _inner_value(value: object) -> object:
    """The value a returns container (Success, Failure, Some) holds, read from its slot; else _NONE."""
    from returns.primitives.container import BaseContainer

    if not isinstance(value, BaseContainer):
        return _NONE
    for cls in type(value).__mro__:
        descriptor = cls.__dict__.get("_inner_value")
        if isinstance(descriptor, types.MemberDescriptorType):
            try:
                return descriptor.__get__(value)
            except AttributeError:
                return _NONE
    return _NONE


def _builtin_len(value: object, kind: type) -> int:
    """How many members a builtin container holds, by the builtin's own method (``kind`` is one)."""
    return cast("Callable[[object], int]", kind.__dict__["__len__"])(value)


def _builtin_iter(value: object, kind: type) -> Iterable[object]:
    return cast("Callable[[object], Iterable[object]]", kind.__dict__["__iter__"])(value)


def _class_name(kind: type) -> str:
    name = type.__dict__["__name__"].__get__(kind)
    return name if isinstance(name, str) else "?"


def _bytes_text(value: bytes | bytearray) -> str:
    if len(value) <= BYTES_SHOWN:
        return repr(value)
    return f"<{type(value).__name__} of {len(value)} bytes: {bytes(value[:64])!r}...>"


def _plain_text(value: object) -> str:
    try:
        return repr(value)
    except ValueError:  # an int of more digits than Python writes out (sys.set_int_max_str_digits)
        return f"<int of {int.bit_length(value)} bits>"  # type: ignore[arg-type]  # only an int's repr raises


def instance_state(value: object) -> list[tuple[str, object]]:
    """An instance's attributes (its ``__dict__``, then its slots) as name and value, read through the
    builtin descriptors only: no ``__getattr__``, property or ``__dict__`` of its class runs."""
    state: list[tuple[str, object]] = []
    for cls in type(value).__mro__:
        descriptor = cls.__dict__.get("__dict__")
        if isinstance(descriptor, types.GetSetDescriptorType):
            attributes = descriptor.__get__(value)
            if type(attributes) is dict:
                state.extend((str(key), attributes[key]) for key in dict.keys(attributes))
            break
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            descriptor = cls.__dict__.get(slot)
            if isinstance(descriptor, types.MemberDescriptorType):
                try:
                    state.append((slot, descriptor.__get__(value)))
                except AttributeError:  # a slot never set
                    pass
    return state


def _shown_fields(kind: type, state: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """A dataclass's fields that its repr shows, in their order; any other class's whole state."""
    fields = next((cls.__dict__["__dataclass_fields__"] for cls in kind.__mro__
                   if "__dataclass_fields__" in cls.__dict__), None)
    if not isinstance(fields, dict):
        return state
    held = dict(state)
    return [(name, held[name]) for name, field in fields.items()
            if isinstance(field, dataclasses.Field) and field.repr and name in held]


def bounded_repr(value: object, limit: int) -> str:
    """``value`` as text of at most ``limit`` characters (and ``...`` where it stops), written with one
    budget for the whole value: a value sharing references is never written out whole. A Result
    reads as the returns library shows it (``<Success: 1>``)."""
    writer = _Writer(max(1, limit))
    try:
        writer.value(value, 0)
    except _Full:
        return "".join(writer.parts)[:max(0, limit - len(FILL))] + FILL
    except Exception as exc:  # a value this cannot read (a broken slot, a class without a name)
        return printable_line(f"<unprintable {_class_name(type(value))}: {type(exc).__name__}>")
    return "".join(writer.parts)
