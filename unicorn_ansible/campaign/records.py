"""A campaign's records: its spec (``campaign.json``) and each combination's state
(``combinations/NNNN.json``), as the campaign's folder keeps them (campaign/store.py).

Each record is a frozen dataclass with a ``version``, one serialiser (``to_json``) and one
constructor from what a file says (``from_untrusted(raw, source)``), which checks every field's
type and bounds and raises UntrustedDataError naming the file: a file edited by hand, left
half-made by an older version or crafted never becomes a record the sweep acts on. (The same
conventions as the records that cross host and controller, so they can share helpers.)
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

from ..errors import UntrustedDataError
from .parameters import MAX_TEXT, Value

if TYPE_CHECKING:
    from ..node.wire import JSONObject

#: the version of both records; a file of another version is refused
VERSION = 1
#: a campaign's name: a run name's letters, short enough for its runs' names (NAME-0001-2)
CAMPAIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
#: a combination's later runs: its first run's name and the attempt's number
LATER_RUN = re.compile(r"^-[2-9][0-9]{0,4}$|^-1[0-9]{1,4}$")
#: bounds on what a spec may hold
MAX_PARAMETERS, MAX_VALUES, MAX_REPEAT, MAX_COMBINATIONS = 64, 10_000, 10_000, 999_999
MAX_ATTEMPTS, MAX_ERROR, MAX_PATH = 10_000, 2000, 4096


class CombinationStatus(str, enum.Enum):
    """Where a combination is: not run yet (or to run again), being run, done, failed for good."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def _refuse(source: str, what: str) -> UntrustedDataError:
    return UntrustedDataError(f"{source} is not a valid campaign file: {what}; "
                              "it was changed by hand or by another version (delete the campaign's folder to start over)")


K = TypeVar("K")


def _field(raw: Mapping[str, object], name: str, kinds: tuple[type[K], ...], source: str) -> K:
    value = raw.get(name)
    if type(value) not in kinds or (isinstance(value, float) and not math.isfinite(value)):
        raise _refuse(source, f"{name} is not a {' or '.join(k.__name__ for k in kinds)}")
    return cast(K, value)  # its type is one of kinds


def _mapping(raw: object, source: str) -> Mapping[str, object]:
    if not isinstance(raw, dict):
        raise _refuse(source, "it is not a JSON object")
    if raw.get("version") != VERSION:
        raise _refuse(source, f"its version is {raw.get('version')!r}, not {VERSION}")
    return raw


def _text(raw: Mapping[str, object], name: str, source: str, limit: int, optional: bool = False) -> str | None:
    value = _field(raw, name, (str, type(None)) if optional else (str,), source)
    if value is not None and (len(value) > limit or "\0" in value):
        raise _refuse(source, f"{name} is longer than {limit} characters or holds a NUL")
    return value


def _value(value: object, name: str, source: str) -> Value:
    if type(value) not in (bool, int, float, str) or not isinstance(value, (bool, int, float, str)):
        raise _refuse(source, f"a value of parameter {name} is a {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _refuse(source, f"a value of parameter {name} is not finite")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise _refuse(source, f"a value of parameter {name} is longer than {MAX_TEXT} characters")
    if isinstance(value, int) and not -2**63 <= value < 2**63:
        raise _refuse(source, f"a value of parameter {name} is beyond 64 bits")
    checked: Value = value
    return checked


def _grid(raw: object, source: str) -> tuple[tuple[str, tuple[Value, ...]], ...]:
    if not isinstance(raw, dict) or len(raw) > MAX_PARAMETERS:
        raise _refuse(source, f"parameters is not an object of at most {MAX_PARAMETERS} parameters")
    grid = []
    for name, values in raw.items():
        if not name.isidentifier() or len(name) > 100:
            raise _refuse(source, f"parameter name {name[:100]!r} is not an identifier")
        if not isinstance(values, list) or not 1 <= len(values) <= MAX_VALUES:
            raise _refuse(source, f"parameter {name} has not 1 to {MAX_VALUES} values")
        typed = tuple(_value(v, name, source) for v in values)
        if len({(type(v), v) for v in typed}) != len(typed):
            raise _refuse(source, f"parameter {name} has a value twice")
        grid.append((name, typed))
    return tuple(grid)


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign runs: the experiment (its file, absolute), every parameter's values in
    the order given (a parameter not swept: its one value), how many times each combination is
    repeated, the inventory's sources. Two sweeps of one campaign must agree on all of it."""

    name: str
    experiment: str
    parameters: tuple[tuple[str, tuple[Value, ...]], ...]
    repeat: int
    inventory: tuple[str, ...]
    created: float
    version: int = VERSION

    @property
    def grid(self) -> dict[str, tuple[Value, ...]]:
        return dict(self.parameters)

    @property
    def swept(self) -> list[str]:
        """The parameters with more than one value."""
        return [name for name, values in self.parameters if len(values) > 1]

    @property
    def count(self) -> int:
        """How many combinations (repeats included) the campaign has."""
        total = self.repeat
        for _, values in self.parameters:
            total *= len(values)
        return total

    def differences(self, other: CampaignSpec) -> list[str]:
        """What ``other`` (a new sweep's) says differently from this spec, as ``field: this -> other``."""
        fields = ("experiment", "parameters", "repeat", "inventory")
        return [f"{field}: {_said(getattr(self, field))} -> {_said(getattr(other, field))}"
                for field in fields if getattr(self, field) != getattr(other, field)]

    def to_json(self) -> JSONObject:
        return {"version": self.version, "name": self.name, "experiment": self.experiment,
                "parameters": {name: list(values) for name, values in self.parameters},
                "repeat": self.repeat, "inventory": list(self.inventory), "created": self.created}

    @classmethod
    def from_untrusted(cls, raw: object, source: str) -> CampaignSpec:
        data = _mapping(raw, source)
        name = _text(data, "name", source, 80) or ""
        if not CAMPAIGN_NAME.match(name):
            raise _refuse(source, f"name {name[:100]!r} is not a campaign name")
        repeat = _field(data, "repeat", (int,), source)
        if not 1 <= repeat <= MAX_REPEAT:
            raise _refuse(source, f"repeat is not 1 to {MAX_REPEAT}")
        inventory = data.get("inventory")
        if not isinstance(inventory, list) or len(inventory) > 100 or \
                not all(isinstance(s, str) and len(s) <= MAX_PATH for s in inventory):
            raise _refuse(source, "inventory is not a list of paths")
        spec = cls(name=name, experiment=_text(data, "experiment", source, MAX_PATH) or "",
                   parameters=_grid(data.get("parameters"), source), repeat=repeat, inventory=tuple(inventory),
                   created=float(_field(data, "created", (int, float), source)))
        if spec.count > MAX_COMBINATIONS:
            raise _refuse(source, f"it has more than {MAX_COMBINATIONS} combinations")
        return spec


def _said(value: object) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):  # the parameters
        return " ".join(f"{name}={','.join(map(str, values))}" for name, values in value)
    return str(list(value) if isinstance(value, tuple) else value)


@dataclass(frozen=True)
class CombinationState:
    """One combination's state: its status, how many of its runs failed (``attempts``), its runs
    (the last is the one that counts; while ``running``, the one being run or left by a sweep
    that died), the last failure's text, when its last run started and ended, and the sweep
    process running it (``sweeper``: pid and start time, as a run's controller is recorded)."""

    index: int
    status: CombinationStatus = CombinationStatus.PENDING
    attempts: int = 0
    runs: tuple[str, ...] = ()
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    sweeper: tuple[int, int] | None = None
    version: int = VERSION

    def to_json(self) -> JSONObject:
        return {"version": self.version, "index": self.index, "status": self.status.value,
                "attempts": self.attempts, "runs": list(self.runs), "error": self.error,
                "started": self.started, "finished": self.finished,
                "sweeper": None if self.sweeper is None else {"pid": self.sweeper[0], "start_time": self.sweeper[1]}}

    @property
    def seconds(self) -> float | None:
        """How long its last run took, once it ended."""
        if self.started is None or self.finished is None:
            return None
        return max(0.0, self.finished - self.started)

    @classmethod
    def from_untrusted(cls, raw: object, source: str, index: int, first_run: str) -> CombinationState:
        """The state in ``raw``, which must be combination ``index``'s (its file's number), whose
        runs are ``first_run`` and its retries (``first_run-2``...): never another run's name."""
        data = _mapping(raw, source)
        if _field(data, "index", (int,), source) != index:
            raise _refuse(source, f"it is not the state of combination {index}")
        try:
            status = CombinationStatus(data.get("status"))
        except ValueError:
            raise _refuse(source, f"status {str(data.get('status'))[:40]!r} is not one of "
                                  f"{', '.join(s.value for s in CombinationStatus)}") from None
        attempts = _field(data, "attempts", (int,), source)
        if not 0 <= attempts <= MAX_ATTEMPTS:
            raise _refuse(source, f"attempts is not 0 to {MAX_ATTEMPTS}")
        runs = data.get("runs")
        if not isinstance(runs, list) or len(runs) > MAX_ATTEMPTS or not all(
                isinstance(r, str) and (r == first_run or (r.startswith(first_run) and LATER_RUN.match(r[len(first_run):])))
                for r in runs):
            raise _refuse(source, f"runs is not a list of combination {index}'s runs ({first_run}, {first_run}-2, ...)")
        times = [_field(data, key, (int, float, type(None)), source) for key in ("started", "finished")]
        return cls(index=index, status=status, attempts=attempts, runs=tuple(runs),
                   error=_text(data, "error", source, MAX_ERROR, optional=True),
                   started=None if times[0] is None else float(times[0]),
                   finished=None if times[1] is None else float(times[1]), sweeper=_sweeper(data, source))


def _sweeper(data: Mapping[str, object], source: str) -> tuple[int, int] | None:
    sweeper = data.get("sweeper")
    if sweeper is None:
        return None
    if not isinstance(sweeper, dict):
        raise _refuse(source, "sweeper is not an object")
    pid, started = _field(sweeper, "pid", (int,), source), _field(sweeper, "start_time", (int,), source)
    if not 0 < pid < 2**31 or not 0 <= started < 2**63:
        raise _refuse(source, "sweeper's pid or start time is out of bounds")
    return pid, started
