"""The wire: every record that crosses between host and controller, and every record of the run folder.

Standard library only: the node bundle carries this module with the rest of the node package,
and the controller imports it, so writer, validator and reader are one class per record.

Each record is a frozen dataclass with a ``version``, one :meth:`Part.to_json` (a JSON object, as
a ``dict``) and one ``from_untrusted(raw, source, lenient=False)`` that checks every field's type
and bounds (texts' lengths, lists' counts, numbers' ranges, finite floats; the parser bounds size
and depth) and fails closed with :class:`WireError`, whose message names the source (the file and
the node, or the command) and the field. The rules, the same for every record:

- **version**: absent is 1 (files of the releases before versions); a version newer than the
  record's :attr:`Record.VERSION` is refused (an incompatible change bumps it; a field added
  is not one).
- **unknown fields** (a newer host's, or a field someone added on one side only) are kept, never
  dropped: in the record's ``extra`` (at most :data:`MAX_EXTRA` of them, each name at most
  :data:`EXTRA_NAME_CHARS` characters and each value at most :data:`EXTRA_CHARS` characters of
  JSON, :data:`EXTRA_DEPTH` levels deep; beyond that the record is refused). ``to_json`` writes
  them back where they were, and ``results --json`` shows those of the records it shows (a task
  record's as its timing's ``extra``, the others' as the node's ``extra`` by file name).
- **absent and null** are the same: a field not given reads as its default, and ``to_json``
  leaves out fields whose value is None.
- **strict and lenient**: what a host sends (journal records, state.json, the executor's answers,
  deploy-report.json, started.json, artifacts.json, outbox.json) is read strictly: one field of the
  wrong type or out of bounds refuses the record. The run folder's own records (run.json,
  status.json, artifacts-index.json: written by this controller, by an older version, which kept
  what hosts reported unchecked, or by hand) are read leniently: such a field reads as its
  default and the rest is kept; the parser's size and depth bounds refuse them all the same.

``parse_json`` is the one bounded JSON parser and :func:`last_object_line` the one reader of an
executor command's answer (its output's last line that is a JSON object), for both sides.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import ClassVar, TypeAlias, TypeVar

JSONValue: TypeAlias = "None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]"
JSONObject: TypeAlias = "dict[str, JSONValue]"

# -- bounds -------------------------------------------------------------------------------------
#: the largest JSON file either side reads
FILE_LIMIT = 64 * 1024 * 1024
#: the longest answer line of an executor command (an outbox up to 768 KB travels inside it, base64)
ANSWER_LIMIT = 8 * 1024 * 1024
#: containers inside containers, at most (no record nests deeper than 5)
MAX_DEPTH = 32
#: a task's name (the executor cuts longer ones), and its preview
TASK_NAME_CHARS = 16 * 1024
PREVIEW_CHARS = 4096
#: names, paths, words (statuses, kinds), versions
TEXT_CHARS = 4096
WORD_CHARS = 200
#: an error's or notice's text, a requirement's command and a command output's tail
ERROR_CHARS = 128 * 1024
COMMAND_CHARS = 64 * 1024
TAIL_CHARS = 16 * 1024
#: entries of any list, and of any mapping
MAX_ITEMS = 1_000_000
#: the largest byte count (a payload, a file) and pid a record may name
BYTES_LIMIT = 1 << 50
PID_LIMIT = 2**31 - 1
#: times (seconds since 1970) and durations, at most
TIME_LIMIT = 1e12
#: unknown fields a record keeps (see the module's rules)
MAX_EXTRA = 32
EXTRA_NAME_CHARS = 128
EXTRA_CHARS = 16 * 1024
EXTRA_DEPTH = 8


class WireError(ValueError):
    """A record that is not what its writer writes: the message names its source and the field."""


# -- the one JSON parser ------------------------------------------------------------------------
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON has")


def _check_depth(text: str, source: str, depth: int) -> None:
    """Refuse ``text`` nested deeper than ``depth`` before the parser recurses into it: the same
    answer wherever it is parsed, however deep the caller's own stack is."""
    if text.count("[") + text.count("{") <= depth:
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(depth):
        shorter = _INNERMOST.sub("", brackets)
        if shorter == brackets:  # all gone, or not balanced (then the parser says what is wrong)
            return
        brackets = shorter
    if _INNERMOST.search(brackets):
        raise WireError(f"{source} is nested deeper than {depth} levels")


def parse_json(data: str | bytes, source: str, limit: int = FILE_LIMIT, *, depth: int = MAX_DEPTH,
               parse_int: Callable[[str], int] | None = None, parse_float: Callable[[str], float] | None = None,
               parse_constant: Callable[[str], float] = _refuse_constant) -> JSONValue:
    """``data`` as JSON, at most ``limit`` bytes and ``depth`` levels; WireError otherwise. The
    ``parse_*`` hooks are json's (the flag store's bound numbers; what they raise, they raise)."""
    if len(data) > limit:
        raise WireError(f"{source} is longer than {limit} bytes")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise WireError(f"{source} is not JSON (not UTF-8)") from None
    _check_depth(text, source, depth)
    try:
        value: JSONValue = json.loads(text, parse_int=parse_int, parse_float=parse_float,
                                      parse_constant=parse_constant)
    except RecursionError:
        raise WireError(f"{source} is nested deeper than {depth} levels") from None
    except ValueError as exc:
        raise WireError(f"{source} is not JSON ({exc})") from None
    return value


def parse_object(data: str | bytes, source: str, limit: int = FILE_LIMIT) -> JSONObject:
    """``data`` as a JSON object (see :func:`parse_json`)."""
    value = parse_json(data, source, limit)
    if not isinstance(value, dict):
        raise WireError(f"{source} is a JSON {type(value).__name__}, not an object")
    return value


def read_object(path: str | os.PathLike[str], source: str | None = None, limit: int = FILE_LIMIT) -> JSONObject | None:
    """The JSON object in the file ``path``; None if it is missing; WireError if it is not one."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WireError(f"{source or os.fspath(path)} cannot be read: {exc.strerror or exc}") from None
    return parse_object(data, source or os.fspath(path), limit)


def read_json(path: str | os.PathLike[str]) -> JSONObject | None:
    """The JSON object in the file ``path``; None when it is missing, unreadable, not JSON, out of
    bounds or not an object: for files whose absence and damage mean the same."""
    try:
        return read_object(path)
    except WireError:
        return None


def last_object_line(output: str, source: str, limit: int = ANSWER_LIMIT) -> JSONObject:
    """The output's last line that is a JSON object: an executor command's answer (become or a
    terminal may add lines before it and "\\r\\n"); WireError if there is none or it is not JSON."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return parse_object(line, source, limit)
    raise WireError(f"{source} has no JSON object line")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so: what writers do with texts they do not bound."""
    if len(text) <= limit:
        return text
    note = f"... ({len(text) - limit} more characters)"
    return text[: max(0, limit - len(note))] + note


# -- reading fields -----------------------------------------------------------------------------
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = 60
_SHOWN.maxlist = _SHOWN.maxdict = 4
_SHOWN.maxlevel = 2


def _shown(value: object) -> str:
    return _SHOWN.repr(value)


P = TypeVar("P", bound="Part")
T = TypeVar("T")


def _depth_at_most(value: JSONValue, depth: int) -> bool:
    if isinstance(value, dict):
        return depth > 0 and all(_depth_at_most(v, depth - 1) for v in value.values())
    if isinstance(value, list):
        return depth > 0 and all(_depth_at_most(v, depth - 1) for v in value)
    return True


#: a value an experiment's parameter takes (campaign/parameters.py)
Scalar = str | int | float | bool


def _is_scalar(value: JSONValue, limit: int) -> bool:
    if isinstance(value, str):
        return len(value) <= limit
    return isinstance(value, (bool, int)) or (isinstance(value, float) and math.isfinite(value))


class Fields:
    """One raw JSON object being read into a record: each field checked as it is taken."""

    __slots__ = ("raw", "source", "lenient")

    def __init__(self, raw: Mapping[str, JSONValue], source: str, lenient: bool) -> None:
        self.raw, self.source, self.lenient = raw, source, lenient

    def fail(self, name: str, value: JSONValue, expected: str) -> WireError:
        if value is None:
            return WireError(f"{self.source}: {name} is missing")
        return WireError(f"{self.source}: {name} is {_shown(value)}, not {expected}")

    def _fallback(self, name: str, value: JSONValue, expected: str, default: T | None) -> T:
        """A required field that is missing, or present and wrong: its default where there is one
        (present and wrong only when lenient), else refused."""
        if default is not None and (value is None or self.lenient):
            return default
        raise self.fail(name, value, expected)

    def _dropped(self, name: str, value: JSONValue, expected: str) -> None:
        """An optional field that is wrong: absent when lenient, else refused."""
        if not self.lenient:
            raise self.fail(name, value, expected)

    # -- texts
    def text(self, name: str, limit: int = TEXT_CHARS, default: str | None = None) -> str:
        value = self.raw.get(name)
        if isinstance(value, str) and len(value) <= limit:
            return value
        return self._fallback(name, value, f"a text of at most {limit} characters", default)

    def opt_text(self, name: str, limit: int = TEXT_CHARS) -> str | None:
        value = self.raw.get(name)
        if value is None or (isinstance(value, str) and len(value) <= limit):
            return value
        self._dropped(name, value, f"a text of at most {limit} characters")
        return None

    def texts(self, name: str, limit: int = TEXT_CHARS, count: int = MAX_ITEMS) -> tuple[str, ...]:
        value = self.raw.get(name)
        if value is None:
            return ()
        if isinstance(value, list) and len(value) <= count and all(
                isinstance(item, str) and len(item) <= limit for item in value):
            return tuple(value)  # type: ignore[arg-type]  # every item is a str (checked above)
        self._dropped(name, value, f"a list of at most {count} texts of at most {limit} characters")
        return ()

    def text_map(self, name: str, limit: int = TEXT_CHARS, count: int = MAX_ITEMS) -> dict[str, str]:
        value = self.raw.get(name)
        if value is None:
            return {}
        if isinstance(value, dict) and len(value) <= count and all(
                len(key) <= limit and isinstance(item, str) and len(item) <= limit for key, item in value.items()):
            return dict(value)  # type: ignore[arg-type]  # every value is a str (checked above)
        self._dropped(name, value, f"an object of at most {count} texts of at most {limit} characters")
        return {}

    # -- numbers
    def integer(self, name: str, low: int = 0, high: int = BYTES_LIMIT, default: int | None = None) -> int:
        value = self.raw.get(name)
        if type(value) is int and low <= value <= high:
            return value
        return self._fallback(name, value, f"a whole number from {low} to {high}", default)

    def opt_integer(self, name: str, low: int = 0, high: int = BYTES_LIMIT) -> int | None:
        value = self.raw.get(name)
        if value is None or (type(value) is int and low <= value <= high):
            return value
        self._dropped(name, value, f"a whole number from {low} to {high}")
        return None

    def opt_number(self, name: str, low: float = 0.0, high: float = TIME_LIMIT) -> float | None:
        value = self.raw.get(name)
        if value is None or (type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
                             and low <= value <= high):  # type: ignore[operator]
            return value  # type: ignore[return-value]  # None, an int or a float (checked above)
        self._dropped(name, value, f"a number from {low:g} to {high:g}")
        return None

    def int_map(self, name: str, limit: int = TEXT_CHARS, high: int = BYTES_LIMIT,
                count: int = MAX_ITEMS) -> dict[str, int]:
        value = self.raw.get(name)
        if value is None:
            return {}
        if isinstance(value, dict) and len(value) <= count and all(
                len(key) <= limit and type(item) is int and 0 <= item <= high for key, item in value.items()):
            return dict(value)  # type: ignore[arg-type]  # every value is an int (checked above)
        self._dropped(name, value, f"an object of at most {count} whole numbers from 0 to {high}")
        return {}

    def scalar_map(self, name: str, limit: int = TEXT_CHARS, count: int = MAX_ITEMS) -> dict[str, Scalar]:
        """An object of texts, whole numbers, finite numbers and true/false (an experiment's parameters)."""
        value = self.raw.get(name)
        if value is None:
            return {}
        if isinstance(value, dict) and len(value) <= count and all(
                len(key) <= limit and _is_scalar(item, limit) for key, item in value.items()):
            return dict(value)  # type: ignore[arg-type]  # every value is a scalar (checked above)
        self._dropped(name, value, f"an object of at most {count} texts, numbers or true/false")
        return {}

    # -- flags
    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw.get(name)
        if isinstance(value, bool):
            return value
        if value is not None:
            self._dropped(name, value, "true or false")
        return default

    def opt_flag(self, name: str) -> bool | None:
        value = self.raw.get(name)
        if value is None or isinstance(value, bool):
            return value
        self._dropped(name, value, "true or false")
        return None

    # -- parts
    def part(self, name: str, cls: type[P]) -> P | None:
        value = self.raw.get(name)
        if value is None:
            return None
        try:
            return cls.from_untrusted(value, f"{self.source}: {name}", self.lenient)
        except WireError:
            if not self.lenient:
                raise
            return None

    def parts(self, name: str, cls: type[P], count: int = MAX_ITEMS,
              refused: Callable[[JSONValue, WireError], P | None] | None = None) -> tuple[P, ...]:
        """A list of parts; an entry that is not one is refused, or, when lenient or with
        ``refused``, left out (``refused`` may give a part in its place)."""
        value = self.raw.get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > count:
            self._dropped(name, value, f"a list of at most {count} objects")
            return ()
        out = []
        for number, entry in enumerate(value):
            try:
                out.append(cls.from_untrusted(entry, f"{self.source}: {name}[{number}]", self.lenient))
            except WireError as exc:
                if refused is not None:
                    replacement = refused(entry, exc)
                    if replacement is not None:
                        out.append(replacement)
                elif not self.lenient:
                    raise
        return tuple(out)

    def part_map(self, name: str, cls: type[P], limit: int = TEXT_CHARS, count: int = MAX_ITEMS) -> dict[str, P]:
        value = self.raw.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict) or len(value) > count:
            self._dropped(name, value, f"an object of at most {count} entries")
            return {}
        out = {}
        for key, entry in value.items():
            if len(key) > limit:
                self._dropped(f"{name}'s key", key, f"a name of at most {limit} characters")
                continue
            try:
                out[key] = cls.from_untrusted(entry, f"{self.source}: {name}[{key!r:.60}]", self.lenient)
            except WireError:
                if not self.lenient:
                    raise
        return out

    # -- what the record does not know
    def extra(self, known: frozenset[str]) -> dict[str, JSONValue]:
        """The fields the record does not define, kept (see the module's rules)."""
        unknown = [key for key in self.raw if key not in known]
        if not unknown:
            return {}
        kept: dict[str, JSONValue] = {}
        for key in unknown:
            value = self.raw[key]
            problem = _extra_problem(key, value, len(kept))
            if problem is None:
                kept[key] = value
            elif not self.lenient:
                raise WireError(f"{self.source}: the unknown field {key[:60]!r} {problem}")
        return kept


def _extra_problem(key: str, value: JSONValue, kept: int) -> str | None:
    if kept >= MAX_EXTRA:
        return f"is one more than the {MAX_EXTRA} unknown fields a record keeps"
    if len(key) > EXTRA_NAME_CHARS:
        return f"has a name longer than {EXTRA_NAME_CHARS} characters"
    if not _depth_at_most(value, EXTRA_DEPTH):
        return f"is nested deeper than {EXTRA_DEPTH} levels"
    if isinstance(value, (dict, list, str)) and len(json.dumps(value)) > EXTRA_CHARS:
        return f"is longer than {EXTRA_CHARS} characters"
    return None


# -- records ------------------------------------------------------------------------------------
_KNOWN: dict[type, frozenset[str]] = {}
_WRITTEN: dict[type, tuple[str, ...]] = {}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _plain(value: object) -> JSONValue:
    if isinstance(value, Part):
        return value.to_json()
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value  # type: ignore[return-value]  # a str, int, float or bool (the fields' types)


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class Part:
    """A part of a record (versioned with it): typed fields, and the unknown ones it was given.

    Equality, hash and repr are written once here for every record, from its fields (what
    ``dataclass`` would generate for each class: a node command imports every record, and
    generating them per class would cost it about 15 ms)."""

    extra: Mapping[str, JSONValue] = field(default_factory=dict)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _field_names(type(self)))

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Part)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _field_names(type(self)))
        return f"{type(self).__qualname__}({shown})"

    @classmethod
    def known(cls) -> frozenset[str]:
        names = _KNOWN.get(cls)
        if names is None:
            names = _KNOWN[cls] = frozenset(f.name for f in fields(cls) if f.name != "extra")
        return names

    @classmethod
    def fields_of(cls, raw: object, source: str, lenient: bool = False) -> Fields:
        """``raw`` opened for reading into this record: it must be an object (of a version this reads)."""
        if not isinstance(raw, dict):
            raise WireError(f"{source} is {_shown(raw)}, not an object")
        return Fields(raw, source, lenient)

    @classmethod
    def from_untrusted(cls: type[P], raw: object, source: str, lenient: bool = False) -> P:
        raise NotImplementedError

    def to_json(self) -> JSONObject:
        """The record as JSON: every field that is not None, then the unknown fields it came with."""
        names = _WRITTEN.get(type(self))
        if names is None:
            names = _WRITTEN[type(self)] = tuple(f.name for f in fields(self) if f.name != "extra")
        out: JSONObject = {}
        for name in names:
            value = getattr(self, name)
            if value is not None:
                out[name] = _plain(value)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class Record(Part):
    """A record of its own (a file, an answer): a part with a version."""

    #: the version this code writes and reads up to
    VERSION: ClassVar[int] = 1
    version: int = 1

    @classmethod
    def fields_of(cls, raw: object, source: str, lenient: bool = False) -> Fields:
        fields_ = super().fields_of(raw, source, lenient)
        version = fields_.raw.get("version", 1)
        if type(version) is not int or not 1 <= version <= cls.VERSION:
            if type(version) is int and version > cls.VERSION:
                raise WireError(f"{source} is of version {version}, written by a newer unicorn-ansible "
                                f"(this one reads up to version {cls.VERSION}); upgrade unicorn-ansible")
            raise WireError(f"{source}: version is {_shown(version)}, not a whole number from 1 to {cls.VERSION}")
        return fields_

    @classmethod
    def read(cls: type[P], path: str | os.PathLike[str], source: str | None = None, lenient: bool = False,
             limit: int = FILE_LIMIT) -> P | None:
        """The record in the file ``path``; None if the file is missing; WireError if it is not one."""
        raw = read_object(path, source, limit)
        return None if raw is None else cls.from_untrusted(raw, source or os.fspath(path), lenient)


def _version(f: Fields) -> int:
    version = f.raw.get("version", 1)
    return version if type(version) is int else 1


# -- the journal: one record per finished task ----------------------------------------------------
@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class TaskRecord(Record):
    """A journal record's header (its payload, the pickled Result, follows it in the journal)."""

    seq: int  #: the task's number on this node, from 0
    name: str
    stage: int
    index: int  #: in its stage (a graph: the vertex)
    stage_size: int
    payload_len: int
    kind: str | None = None  #: a TaskKind
    type: str | None = None  #: Success or Failure
    preview: str | None = None
    start: float | None = None
    end: float | None = None
    log: str | None = None  #: the task's log, relative to the work folder
    log_dropped: int | None = None  #: bytes of output the log cap left out

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> TaskRecord:
        f = cls.fields_of(raw, source, lenient)
        return cls(seq=f.integer("seq"), name=f.text("name", TASK_NAME_CHARS), stage=f.integer("stage"),
                   index=f.integer("index"), stage_size=f.integer("stage_size"),
                   payload_len=f.integer("payload_len", high=1 << 40), kind=f.opt_text("kind", WORD_CHARS),
                   type=f.opt_text("type", WORD_CHARS), preview=f.opt_text("preview", PREVIEW_CHARS),
                   start=f.opt_number("start"), end=f.opt_number("end"), log=f.opt_text("log"),
                   log_dropped=f.opt_integer("log_dropped"), version=_version(f), extra=f.extra(cls.known()))

    def reported(self) -> ReportedTask:
        """What a progress report carries of it (the controller keeps it if the host is lost)."""
        return ReportedTask(seq=self.seq, name=self.name, stage=self.stage, index=self.index, type=self.type,
                            kind=self.kind, preview=self.preview, start=self.start, end=self.end, extra=self.extra)


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ReportedTask(Part):
    """A finished task as a progress report tells it (``new`` in an executor's answer)."""

    seq: int | None = None
    name: str = "?"
    stage: int | None = None
    index: int | None = None
    type: str | None = None
    kind: str | None = None
    preview: str | None = None
    start: float | None = None
    end: float | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ReportedTask:
        f = cls.fields_of(raw, source, lenient)
        seq = f.opt_integer("seq") if lenient else f.integer("seq")
        return cls(seq=seq, name=f.text("name", TASK_NAME_CHARS, default="?" if lenient else None),
                   stage=f.opt_integer("stage"), index=f.opt_integer("index"), type=f.opt_text("type", WORD_CHARS),
                   kind=f.opt_text("kind", WORD_CHARS), preview=f.opt_text("preview", PREVIEW_CHARS),
                   start=f.opt_number("start"), end=f.opt_number("end"), extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ReportedMark(Record):
    """reported.json: the last task whose header went back with a progress report (``seq``), and the
    last before that report (``previous``): a report's headers go once more with the next one."""

    seq: int
    previous: int = -1

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ReportedMark:
        f = cls.fields_of(raw, source, lenient)
        return cls(seq=f.integer("seq", low=-1), previous=f.integer("previous", low=-1, default=-1),
                   version=_version(f), extra=f.extra(cls.known()))


# -- the executor's state and answers -----------------------------------------------------------
@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class StoppedProcess(Part):
    """A process the tasks left running that the pipeline's end (or a cancel) stopped."""

    pid: int | None = None
    command: str = ""

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> StoppedProcess:
        f = cls.fields_of(raw, source, lenient)
        return cls(pid=f.opt_integer("pid", high=PID_LIMIT), command=f.text("command", TEXT_CHARS, default=""),
                   extra=f.extra(cls.known()))


def _state_fields(f: Fields) -> dict[str, object]:
    """The fields of an executor's state (state.json, and every answer, which carries it)."""
    return dict(
        status=f.text("status", WORD_CHARS, default="" if f.lenient else None), pid=f.opt_integer("pid", high=PID_LIMIT),
        started=f.opt_number("started"), updated=f.opt_number("updated"), finished=f.opt_number("finished"),
        stages=f.opt_integer("stages"), stage=f.opt_integer("stage"), shape=f.opt_text("shape", WORD_CHARS),
        executor_version=f.opt_text("executor_version", WORD_CHARS), python=f.opt_text("python", WORD_CHARS),
        done=f.opt_integer("done"), failed=f.opt_integer("failed"), total=f.opt_integer("total"),
        not_run=f.texts("not_run", TASK_NAME_CHARS), marker=f.opt_text("marker", WORD_CHARS),
        stopped=f.opt_text("stopped", ERROR_CHARS), stopped_processes=f.parts("stopped_processes", StoppedProcess),
        success=f.opt_flag("success"), error=f.opt_text("error", ERROR_CHARS), version=_version(f))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ExecutorState(Record):
    """state.json: the executor's status (an ExecutorStatus), its progress and how it ended."""

    status: str
    pid: int | None = None
    started: float | None = None
    updated: float | None = None
    finished: float | None = None
    stages: int | None = None  #: a Pipeline's stages (a graph: 0)
    stage: int | None = None  #: the stage running, from 1
    shape: str | None = None  #: "stages" or "graph"
    executor_version: str | None = None
    python: str | None = None
    done: int | None = None
    failed: int | None = None
    total: int | None = None
    not_run: tuple[str, ...] = ()
    marker: str | None = None  #: the pipeline's processes carry it (see sweep.py)
    stopped: str | None = None  #: why the plan starts no more tasks
    stopped_processes: tuple[StoppedProcess, ...] = ()
    success: bool | None = None
    error: str | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ExecutorState:
        f = cls.fields_of(raw, source, lenient)
        return cls(**_state_fields(f), extra=f.extra(cls.known()))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ExecutorAnswer(ExecutorState):
    """What ``start``, ``state`` and ``cancel`` print: the state and where its results are."""

    already_started: bool | None = None
    outbox: str | None = None  #: where the host keeps the outbox (the work folder resolved there)
    deployment: str | None = None  #: which of the node's pipelines answers (its executor id)
    outbox_data: str | None = None  #: a small outbox of a pipeline that is over, base64
    new: tuple[ReportedTask, ...] = ()  #: tasks finished since the last answer
    stopped_count: int | None = None  #: cancel: how many processes were stopped

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ExecutorAnswer:
        f = cls.fields_of(raw, source, lenient)
        return cls(**_state_fields(f), already_started=f.opt_flag("already_started"),  # type: ignore[arg-type]
                   outbox=f.opt_text("outbox"), deployment=f.opt_text("deployment"),
                   outbox_data=f.opt_text("outbox_data", ANSWER_LIMIT), new=f.parts("new", ReportedTask, 10_000),
                   stopped_count=f.opt_integer("stopped_count"), extra=f.extra(cls.known()))

    @classmethod
    def of(cls, state: ExecutorState, **answer: object) -> ExecutorAnswer:
        """The answer that carries ``state``, with the answer's own fields."""
        carried = {name: getattr(state, name) for name in ExecutorState.known()}
        return cls(**carried, **answer, extra=state.extra)  # type: ignore[arg-type]

    def progress(self) -> ExecutorAnswer:
        """The answer as status.json keeps it: without its outbox and the tasks it reported."""
        return ExecutorAnswer.of(self, already_started=self.already_started, outbox=self.outbox,
                                 deployment=self.deployment, stopped_count=self.stopped_count)


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class Started(Record):
    """started.json: the detached executor's pid, written once by ``start`` (or by a cancel first)."""

    pid: int | None = None
    time: float | None = None
    interpreter: str | None = None
    cancelled: bool | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> Started:
        f = cls.fields_of(raw, source, lenient)
        return cls(pid=f.opt_integer("pid", high=PID_LIMIT), time=f.opt_number("time"),
                   interpreter=f.opt_text("interpreter"), cancelled=f.opt_flag("cancelled"),
                   version=_version(f), extra=f.extra(cls.known()))


# -- the deployment -----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ContainerSpec(Part):
    """A DockerImage environment (see node/container.py): deploy.json's, completed on the host."""

    image: str | None = None  #: None: built from the requirements
    base_image: str | None = None
    ports: Mapping[str, int] = field(default_factory=dict)  #: container port -> host port
    network: str | None = None
    arguments: tuple[str, ...] = ()
    #: netunicorn's default DockerImage(): where no image can be had, the node's error naming the fixes...
    default_image: bool = False
    shell_fallback: bool = False  #: ...or ShellExecution, where it installs nothing or the host asked for it
    cleanup: bool = True  #: the Deployment's: False keeps the container, stopped, after the pipeline
    engine: str | None = None  #: on the host: the engine's path
    name: str | None = None  #: on the host: the executor's container

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ContainerSpec:
        f = cls.fields_of(raw, source, lenient)
        return cls(image=f.opt_text("image"), base_image=f.opt_text("base_image"),
                   ports=f.int_map("ports", WORD_CHARS, high=65535, count=65536), network=f.opt_text("network"),
                   arguments=f.texts("arguments", COMMAND_CHARS, 10_000), default_image=f.flag("default_image"),
                   shell_fallback=f.flag("shell_fallback"), cleanup=f.flag("cleanup", default=True),
                   engine=f.opt_text("engine"), name=f.opt_text("name"), extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class DeploySpec(Record):
    """deploy.json: the node's requirements and how to run them (written by the compiler)."""

    node: str = "?"
    python: str | None = None  #: the controller's major.minor: pipelines are pickled for it
    env_dir: str = "env"  #: the environment's folder, relative to the work folder
    commands: tuple[str, ...] = ()
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    redeploy: bool = False
    requirement_timeout: float | None = None
    time_limit: float | None = None  #: the node's limit: deployment and pipeline together
    container: ContainerSpec | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> DeploySpec:
        f = cls.fields_of(raw, source, lenient)
        return cls(node=f.text("node", default="?"), python=f.opt_text("python", WORD_CHARS),
                   env_dir=f.text("env_dir", default="env"), commands=f.texts("commands", COMMAND_CHARS, 100_000),
                   environment_variables=f.text_map("environment_variables", COMMAND_CHARS),
                   redeploy=f.flag("redeploy"), requirement_timeout=f.opt_number("requirement_timeout"),
                   time_limit=f.opt_number("time_limit"), container=f.part("container", ContainerSpec),
                   version=_version(f), extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class CommandRun(Part):
    """One requirement as it ran (or one step of an image build)."""

    command: str
    start: float | None = None
    end: float | None = None
    rc: int | None = None
    log: str | None = None  #: relative to the work folder
    output_tail: str | None = None
    timed_out: float | None = None  #: the limit it was stopped at, seconds
    limit: str | None = None  #: which: "requirement" or "deployment"

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> CommandRun:
        f = cls.fields_of(raw, source, lenient)
        return cls(command=f.text("command", COMMAND_CHARS, default="?" if lenient else None),
                   start=f.opt_number("start"), end=f.opt_number("end"), rc=f.opt_integer("rc", -(2**31), 2**31),
                   log=f.opt_text("log"), output_tail=f.opt_text("output_tail", TAIL_CHARS),
                   timed_out=f.opt_number("timed_out"), limit=f.opt_text("limit", WORD_CHARS),
                   extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class DeployReport(Record):
    """deploy-report.json: how the node's deployment went, written as it goes."""

    ok: bool = False
    node: str | None = None
    python: str | None = None
    python_executable: str | None = None
    skipped: bool = False  #: the environment was there already
    commands: tuple[CommandRun, ...] = ()
    error: str | None = None
    pid: int | None = None
    marker: str | None = None
    started: float | None = None
    finished: float | None = None
    #: seconds from started to finished on the host's monotonic clock (what a wall-clock jump
    #: during the deployment leaves alone; the pipeline's time limit subtracts it); a field added
    #: (issue 28, item 11): absent in the reports of older hosts
    duration: float | None = None
    environment: str | None = None  #: the virtual environment's folder
    interpreter: str | None = None  #: the Python that runs the pipeline
    container: ContainerSpec | None = None
    notice: str | None = None  #: how the host runs it, if not as asked
    cancelled: bool | None = None
    failed_command: str | None = None
    failed_rc: int | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> DeployReport:
        f = cls.fields_of(raw, source, lenient)
        return cls(ok=f.flag("ok"), node=f.opt_text("node"), python=f.opt_text("python", WORD_CHARS),
                   python_executable=f.opt_text("python_executable"), skipped=f.flag("skipped"),
                   commands=f.parts("commands", CommandRun, 100_000), error=f.opt_text("error", ERROR_CHARS),
                   pid=f.opt_integer("pid", high=PID_LIMIT), marker=f.opt_text("marker", WORD_CHARS),
                   started=f.opt_number("started"), finished=f.opt_number("finished"),
                   duration=f.opt_number("duration"),
                   environment=f.opt_text("environment"), interpreter=f.opt_text("interpreter"),
                   container=f.part("container", ContainerSpec), notice=f.opt_text("notice", ERROR_CHARS),
                   cancelled=f.opt_flag("cancelled"), failed_command=f.opt_text("failed_command", COMMAND_CHARS),
                   failed_rc=f.opt_integer("failed_rc", -(2**31), 2**31), version=_version(f),
                   extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class CommandSummary(Part):
    """A requirement in the deployment's answer: its command (cut), exit code and seconds."""

    command: str
    rc: int | None = None
    seconds: float | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> CommandSummary:
        f = cls.fields_of(raw, source, lenient)
        return cls(command=f.text("command", TEXT_CHARS, default="?" if lenient else None),
                   rc=f.opt_integer("rc", -(2**31), 2**31), seconds=f.opt_number("seconds"),
                   extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class StartedSummary(Part):
    """A deployment that started its pipeline in the same call (``deploy --start``)."""

    already_started: bool = False
    pid: int | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> StartedSummary:
        f = cls.fields_of(raw, source, lenient)
        return cls(already_started=f.flag("already_started"), pid=f.opt_integer("pid", high=PID_LIMIT),
                   extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class DeployAnswer(Record):
    """What ``deploy`` prints (the bundle's Python check prints the same fields, see compiler/bundle.py)."""

    ok: bool = False
    skipped: bool | None = None
    error: str | None = None
    python: str | None = None
    environment: str | None = None
    cancelled: bool | None = None
    notice: str | None = None
    interpreter: str | None = None  #: the executor's Python (a start run by it forks the executor)
    commands: tuple[CommandSummary, ...] = ()
    started: StartedSummary | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> DeployAnswer:
        f = cls.fields_of(raw, source, lenient)
        return cls(ok=f.flag("ok"), skipped=f.opt_flag("skipped"), error=f.opt_text("error", ERROR_CHARS),
                   python=f.opt_text("python", WORD_CHARS), environment=f.opt_text("environment"),
                   cancelled=f.opt_flag("cancelled"), notice=f.opt_text("notice", ERROR_CHARS),
                   interpreter=f.opt_text("interpreter"), commands=f.parts("commands", CommandSummary, 100_000),
                   started=f.part("started", StartedSummary), version=_version(f), extra=f.extra(cls.known()))


# -- the node's run specification -----------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ImportNeed(Part):
    """An installed module the pipeline imports: the tasks that need it, and what installs it."""

    tasks: tuple[str, ...] = ()
    install: str | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ImportNeed:
        f = cls.fields_of(raw, source, lenient)
        return cls(tasks=f.texts("tasks", TASK_NAME_CHARS), install=f.opt_text("install", COMMAND_CHARS),
                   extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class FlagSettings(Part):
    """Where a node's tasks find the run's flags (see engine/flag_server.py's task_settings)."""

    endpoint: str | None = None  #: unix:<socket> or tcp:127.0.0.1:<port>
    token: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)  #: netunicorn's NETUNICORN_* variables

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> FlagSettings:
        f = cls.fields_of(raw, source, lenient)
        return cls(endpoint=f.opt_text("endpoint"), token=f.opt_text("token", WORD_CHARS),
                   environment=f.text_map("environment"), extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class DeclaredArtifact(Part):
    """A path or glob pattern whose files come home (``task``: whose; None: the pipeline's)."""

    pattern: str
    task: str | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> DeclaredArtifact:
        f = cls.fields_of(raw, source, lenient)
        return cls(pattern=f.text("pattern"), task=f.opt_text("task", TASK_NAME_CHARS), extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ArtifactDeclarations(Part):
    """node.json's ``artifacts``."""

    declared: tuple[DeclaredArtifact, ...] = ()

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ArtifactDeclarations:
        f = cls.fields_of(raw, source, lenient)
        return cls(declared=f.parts("declared", DeclaredArtifact), extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class NodeSpec(Record):
    """node.json: how the node runs its pipeline (written by the compiler)."""

    node: str = "?"
    deployment: str | None = None  #: its executor id, echoed in the executor's answers
    run: str | None = None
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    imports: Mapping[str, ImportNeed] = field(default_factory=dict)  #: top-level module -> who needs it
    task_timeout: float | None = None
    log_cap: int | None = None
    time_limit: float | None = None
    flags: FlagSettings | None = None
    artifacts: ArtifactDeclarations | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> NodeSpec:
        f = cls.fields_of(raw, source, lenient)
        return cls(node=f.text("node", default="?"), deployment=f.opt_text("deployment"), run=f.opt_text("run"),
                   environment_variables=f.text_map("environment_variables", COMMAND_CHARS),
                   imports=f.part_map("imports", ImportNeed), task_timeout=f.opt_number("task_timeout"),
                   log_cap=f.opt_integer("log_cap"), time_limit=f.opt_number("time_limit"),
                   flags=f.part("flags", FlagSettings), artifacts=f.part("artifacts", ArtifactDeclarations),
                   version=_version(f), extra=f.extra(cls.known()))


# -- artifacts and the outbox ---------------------------------------------------------------------
def safe_parts(path: object) -> list[str]:
    """A host's relative path as its parts; ValueError when it could leave its folder."""
    if not isinstance(path, str) or not path or len(path) > TEXT_CHARS or "\0" in path:
        raise ValueError("an empty, over-long or NUL-containing path")
    if path.startswith("/"):
        raise ValueError("an absolute path")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("a path with '..', '.' or empty parts")
    return parts


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ArtifactOffer(Part):
    """One file a node offers to bring home (artifacts.json), or why it stays on the host (``left``)."""

    path: str  #: inside the task's artifacts folder: relative, no ``..``
    task: str | None = None
    source: str | None = None  #: where it is on the host
    size: int | None = None
    sha256: str | None = None
    transfer: str | None = None  #: the name the controller fetches it by, in the work folder
    left: str | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ArtifactOffer:
        f = cls.fields_of(raw, source, lenient)
        path = f.text("path")
        try:
            safe_parts(path)
        except ValueError as exc:
            raise WireError(f"{source}: path is {_shown(path)}: {exc}") from None
        offer = cls(path=path, task=f.opt_text("task", TASK_NAME_CHARS), source=f.opt_text("source"),
                    size=f.opt_integer("size"), sha256=f.opt_text("sha256", 64), transfer=f.opt_text("transfer", 100),
                    left=f.opt_text("left", ERROR_CHARS), extra=f.extra(cls.known()))
        if offer.left is None:
            offer.check_fetchable(f)
        return offer

    def check_fetchable(self, f: Fields) -> None:
        if self.size is None:
            raise f.fail("size", None, "a size")
        if self.sha256 is None or not _SHA256.fullmatch(self.sha256):
            raise f.fail("sha256", self.sha256, "a sha256 in hexadecimal")
        if self.transfer is None or ".." in self.transfer.split("/") or self.transfer.startswith("/"):
            raise f.fail("transfer", self.transfer, "a name in the work folder")

    @classmethod
    def refused(cls, raw: JSONValue, error: WireError) -> ArtifactOffer:
        """An entry that cannot be taken, kept to show: what it said, and why it was refused."""
        said: Mapping[str, JSONValue] = raw if isinstance(raw, dict) else {}
        task, path, where = said.get("task"), said.get("path"), said.get("source")
        return cls(task=task[:TEXT_CHARS] if isinstance(task, str) else None, path=str(path)[:TEXT_CHARS],
                   source=str(where)[:TEXT_CHARS], left=f"refused: {str(error).rpartition(': ')[2]}")


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ArtifactsManifest(Record):
    """artifacts.json: every file a node offers; an entry that is not one is kept as refused."""

    artifacts: tuple[ArtifactOffer, ...] = ()

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ArtifactsManifest:
        f = cls.fields_of(raw, source, lenient)
        return cls(artifacts=f.parts("artifacts", ArtifactOffer, refused=ArtifactOffer.refused),
                   version=_version(f), extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class OutboxManifest(Record):
    """outbox.json, the outbox's first member: the files fetched on their own, with their sizes."""

    separate: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> OutboxManifest:
        f = cls.fields_of(raw, source, lenient)
        return cls(separate=f.int_map("separate", WORD_CHARS, count=100), version=_version(f),
                   extra=f.extra(cls.known()))


# -- the run folder -------------------------------------------------------------------------------
def check_folder_name(name: str) -> str:
    """``name`` if it can name a folder inside another (a node's, an executor's); ValueError otherwise."""
    if not name or "/" in name or "\0" in name or name in (".", "..") or len(name) > 255:
        raise ValueError(f"{_shown(name)} cannot name a folder")
    return name


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ControllerRef(Part):
    """A controller process: its pid and start time (its identity; see engine/controller.py)."""

    pid: int | None = None
    start_time: int | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ControllerRef:
        f = cls.fields_of(raw, source, lenient)
        return cls(pid=f.opt_integer("pid", high=PID_LIMIT), start_time=f.opt_integer("start_time"),
                   extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class RunOptions(Part):
    """run.json's ``options``: compiler/settings.py's CompileOptions, as the run was compiled with
    (the same fields; a field only CompileOptions has is kept as an unknown one)."""

    forks: int | None = None
    poll_seconds: int | None = None
    run_timeout_seconds: int | None = None
    task_timeout: float | None = None
    requirement_timeout: float | None = None
    log_cap: int | None = None
    artifact_cap: int | None = None
    redeploy: bool | None = None
    strategy: str | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> RunOptions:
        f = cls.fields_of(raw, source, lenient)
        return cls(forks=f.opt_integer("forks"), poll_seconds=f.opt_integer("poll_seconds"),
                   run_timeout_seconds=f.opt_integer("run_timeout_seconds"),
                   task_timeout=f.opt_number("task_timeout"), requirement_timeout=f.opt_number("requirement_timeout"),
                   log_cap=f.opt_integer("log_cap"), artifact_cap=f.opt_integer("artifact_cap"),
                   redeploy=f.opt_flag("redeploy"), strategy=f.opt_text("strategy", WORD_CHARS),
                   extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class RunRecord(Record):
    """run.json: the run's record (changed only under the run folder's lock, see engine/rundir.py)."""

    name: str = ""
    run_id: str | None = None  #: the run's folder on the hosts
    created: float | None = None
    status: str | None = None  #: a RunStatus
    hosts: tuple[str, ...] = ()
    executors: Mapping[str, str] = field(default_factory=dict)  #: executor id -> its inventory host
    inventory: tuple[str, ...] = ()  #: the inventory sources (none: the embedded default)
    options: RunOptions | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    controller: ControllerRef | None = None
    canceller: ControllerRef | None = None
    prepare_started: float | None = None
    prepare_finished: float | None = None
    started: float | None = None
    finished: float | None = None
    collected: float | None = None
    cancel_requested: float | None = None
    cancelled: float | None = None
    cancelled_nodes: tuple[str, ...] = ()
    deploy_rc: int | None = None
    ansible_rc: int | None = None
    cancel_rc: int | None = None
    cancel_nodes_rc: int | None = None
    error: str | None = None
    #: the experiment function's arguments the run was made with (``run -p``, a campaign's sweep)
    parameters: Mapping[str, Scalar] = field(default_factory=dict)

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> RunRecord:
        f = cls.fields_of(raw, source, lenient)
        rc = {name: f.opt_integer(name, -(2**31), 2**31)
              for name in ("deploy_rc", "ansible_rc", "cancel_rc", "cancel_nodes_rc")}
        times = {name: f.opt_number(name) for name in ("created", "prepare_started", "prepare_finished", "started",
                                                       "finished", "collected", "cancel_requested", "cancelled")}
        return cls(name=f.text("name", WORD_CHARS, default=""), run_id=f.opt_text("run_id", WORD_CHARS),
                   status=f.opt_text("status", WORD_CHARS), hosts=_folder_names(f, "hosts"),
                   executors=_executor_map(f), inventory=f.texts("inventory"), options=f.part("options", RunOptions),
                   versions=f.text_map("versions", WORD_CHARS, 1000), controller=f.part("controller", ControllerRef),
                   canceller=f.part("canceller", ControllerRef), cancelled_nodes=f.texts("cancelled_nodes"),
                   error=f.opt_text("error", ERROR_CHARS), parameters=f.scalar_map("parameters"),
                   **times, **rc,  # type: ignore[arg-type]
                   version=_version(f), extra=f.extra(cls.known()))

    def deployments(self) -> dict[str, str]:
        """Every deployment by its executor id (the node's name; ``NODE#N`` for a node's N-th
        pipeline), in the experiment's order, with its inventory host. Records written before a
        node could run several pipelines name only their hosts: one executor each, named after it."""
        return dict(self.executors) if self.executors else {host: host for host in self.hosts}


def _folder_names(f: Fields, name: str) -> tuple[str, ...]:
    names = f.texts(name, 255)
    try:
        return tuple(check_folder_name(entry) for entry in names)
    except ValueError as exc:
        f._dropped(name, list(names), f"a list of names that can name folders ({exc})")
        return ()


def _executor_map(f: Fields) -> dict[str, str]:
    mapping = f.text_map("executors", 255)
    try:
        return {check_folder_name(executor): host for executor, host in mapping.items()}
    except ValueError as exc:
        f._dropped("executors", dict(mapping), f"executor ids that can name folders ({exc})")
        return {}


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class StatusEvent(Part):
    """One step's outcome for a node, as the collector saw it."""

    step: str | None = None
    outcome: str | None = None
    time: float | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> StatusEvent:
        f = cls.fields_of(raw, source, lenient)
        return cls(step=f.opt_text("step", WORD_CHARS), outcome=f.opt_text("outcome", WORD_CHARS),
                   time=f.opt_number("time"), extra=f.extra(cls.known()))


#: the events a node's status keeps (the latest)
MAX_EVENTS = 10_000


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class NodeStatusRecord(Record):
    """nodes/<executor>/status.json, the collector's: the node's phase, progress and what finished."""

    host: str | None = None
    phase: str | None = None  #: a Phase (results/status.py)
    prepared: bool = False
    error: str | None = None
    events: tuple[StatusEvent, ...] = ()
    deploy_started: float | None = None
    deploy_finished: float | None = None
    deploy: DeployAnswer | None = None  #: the deployment's answer
    progress: ExecutorAnswer | None = None  #: the executor's last answer (without its outbox)
    finished: tuple[ReportedTask, ...] = ()  #: every task the executor reported as finished
    fetched: bool | None = None
    unreachable: bool | None = None
    timed_out: bool | None = None
    cancelled: bool | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> NodeStatusRecord:
        f = cls.fields_of(raw, source, lenient)
        return cls(host=f.opt_text("host"), phase=f.opt_text("phase", WORD_CHARS), prepared=f.flag("prepared"),
                   error=f.opt_text("error", ERROR_CHARS), events=f.parts("events", StatusEvent, MAX_EVENTS),
                   deploy_started=f.opt_number("deploy_started"), deploy_finished=f.opt_number("deploy_finished"),
                   deploy=f.part("deploy", DeployAnswer), progress=f.part("progress", ExecutorAnswer),
                   finished=f.parts("finished", ReportedTask), fetched=f.opt_flag("fetched"),
                   unreachable=f.opt_flag("unreachable"), timed_out=f.opt_flag("timed_out"),
                   cancelled=f.opt_flag("cancelled"), version=_version(f), extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ArtifactIndexEntry(Part):
    """One file of a node's artifacts at home: where it is (``file``), or why it stayed (``left``)."""

    path: str
    task: str | None = None
    size: int | None = None
    sha256: str | None = None  #: of the file at home
    offered_sha256: str | None = None  #: what the host said it was
    source: str | None = None
    file: str | None = None  #: relative to the run folder
    left: str | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ArtifactIndexEntry:
        f = cls.fields_of(raw, source, lenient)
        return cls(path=f.text("path"), task=f.opt_text("task", TASK_NAME_CHARS), size=f.opt_integer("size"),
                   sha256=f.opt_text("sha256", 64), offered_sha256=f.opt_text("offered_sha256", 64),
                   source=f.opt_text("source"), file=f.opt_text("file"), left=f.opt_text("left", ERROR_CHARS),
                   extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ArtifactsIndex(Record):
    """nodes/<executor>/artifacts-index.json: every artifact of the node, by its task and path. An
    index of the releases before versions is the mapping itself."""

    entries: Mapping[str, ArtifactIndexEntry] = field(default_factory=dict)

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> ArtifactsIndex:
        f = cls.fields_of(raw, source, lenient)
        if "version" not in f.raw and "entries" not in f.raw:  # the releases before versions
            f = Fields({"entries": dict(f.raw)}, source, lenient)
        return cls(entries=f.part_map("entries", ArtifactIndexEntry, 2 * TEXT_CHARS + 100), version=_version(f),
                   extra=f.extra(cls.known()))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class FlagsEndpoint(Record):
    """flags-endpoint.json: where the run's flag store listens (see engine/flag_server.py)."""

    socket: str
    port: int
    token: str
    experiment_id: str | None = None
    local_port: int | None = None

    @classmethod
    def from_untrusted(cls, raw: object, source: str, lenient: bool = False) -> FlagsEndpoint:
        f = cls.fields_of(raw, source, lenient)
        return cls(socket=f.text("socket"), port=f.integer("port", 1, 65535), token=f.text("token", WORD_CHARS),
                   experiment_id=f.opt_text("experiment_id", WORD_CHARS),
                   local_port=f.opt_integer("local_port", 1, 65535), version=_version(f), extra=f.extra(cls.known()))


#: every record a file or an answer is, for the tests that check them all
RECORDS: Sequence[type[Record]] = (
    TaskRecord, ReportedMark, ExecutorState, ExecutorAnswer, Started, DeploySpec, DeployReport, DeployAnswer,
    NodeSpec, ArtifactsManifest, OutboxManifest, RunRecord, NodeStatusRecord, ArtifactsIndex, FlagsEndpoint)
