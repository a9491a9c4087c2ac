"""An experiment's parameters: the keyword arguments of its function, after the node pool.

``def experiment(nodes, rate=10, size="1M")`` has the parameters ``rate`` (an int) and ``size``
(a str): each is typed by its default, one of bool, int, float and str (JSON says each as it
is, so run records and campaign files keep them exactly). ``-p rate=20`` gives a value as text,
converted to that type; a wrong name or a value that does not convert is a one-line UsageError
that lists the parameters with their defaults. A module-level ``experiment = Experiment()`` has
no parameters.

:class:`ExperimentArguments` is what ``load_experiment_file`` (engine/lifecycle.py) asks for the
keyword arguments once the file has defined its ``experiment``; it keeps every parameter's value
(the given ones and the defaults) for the run's record.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import UsageError

#: a parameter's value: what JSON says exactly and a command line can give as text
Value = bool | int | float | str
#: the types a parameter can have (bool first: a bool is an int too)
TYPES: tuple[type, ...] = (bool, int, float, str)
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
#: the longest text value (a parameter is a setting, not data)
MAX_TEXT = 1000


@dataclass(frozen=True)
class Parameter:
    """One keyword argument of the experiment function, with its default (its type's source)."""

    name: str
    default: Value

    @property
    def kind(self) -> type:
        return type(self.default)

    def shown(self) -> str:
        return f"{self.name}={self.default!r}"

    def convert(self, text: str) -> Value:
        """``text`` (from the command line) as this parameter's type; ValueError saying why not."""
        kind = self.kind
        if kind is str:
            if len(text) > MAX_TEXT:
                raise ValueError(f"a text of at most {MAX_TEXT} characters")
            return text
        if kind is bool:
            if text.strip().lower() in _TRUE:
                return True
            if text.strip().lower() in _FALSE:
                return False
            raise ValueError("a bool (true/false, yes/no, on/off, 1/0)")
        try:
            number = int(text) if kind is int else float(text)
        except ValueError:
            raise ValueError(f"an {kind.__name__}" if kind is int else "a float") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError("a finite float")
        return number

    def coerce(self, value: object) -> Value:
        """A value given in Python: text is converted as from the command line; a value of the
        parameter's type (an int for a float) is kept; anything else is a ValueError."""
        if isinstance(value, str):
            return self.convert(value)
        kind = self.kind
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError("a finite float")
            return float(value)
        raise ValueError(f"a {kind.__name__}, not a {type(value).__name__}")


def declared_parameters(function: Callable[..., object]) -> tuple[dict[str, Parameter], dict[str, str]]:
    """The parameters of an experiment function (every argument after the first, the node pool,
    whose default is a bool, int, float or str: a parameter's type is its default's), and why each
    other argument is none (no default, a default of another type): -p cannot set those."""
    try:
        arguments = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return {}, {}
    declared, unsettable = {}, {}
    for argument in arguments[1:]:
        if argument.kind in (argument.VAR_POSITIONAL, argument.VAR_KEYWORD):
            continue
        if argument.default is argument.empty:
            unsettable[argument.name] = "has no default (a parameter's type is its default's: give it one)"
        elif type(argument.default) not in TYPES:
            unsettable[argument.name] = (f"defaults to a {type(argument.default).__name__} (a parameter's "
                                         "default is a bool, int, float or str)")
        else:
            declared[argument.name] = Parameter(argument.name, argument.default)
    return declared, unsettable


def listing(declared: Mapping[str, Parameter]) -> str:
    """The parameters with their defaults, for an error message."""
    return ", ".join(p.shown() for p in declared.values()) if declared else "none"


def typed(declared: Mapping[str, Parameter], given: Mapping[str, object], source: str,
          option: str = "-p", unsettable: Mapping[str, str] | None = None) -> dict[str, Value]:
    """Every parameter's value: the given ones typed (text converted, Python values checked),
    the others their defaults. A name the experiment lacks or a value that does not convert is
    a UsageError naming the parameters and their defaults."""
    values: dict[str, Value] = {name: parameter.default for name, parameter in declared.items()}
    unsettable = unsettable or {}
    for name, value in given.items():
        if name not in declared:
            why = f"argument {name} of experiment() {unsettable[name]}" if name in unsettable else \
                f"{source}'s experiment has no parameter {name}"
            raise UsageError(f"{option} {name}: {why}; its parameters: {listing(declared)}")
        try:
            values[name] = declared[name].coerce(value)
        except ValueError as exc:
            raise UsageError(f"{option} {name}={_short(value)}: {name} takes {exc}; "
                             f"{source}'s parameters: {listing(declared)}") from None
    return values


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def parse_assignments(assignments: Sequence[str], option: str = "-p") -> dict[str, str]:
    """``["rate=20", "size=10M"]`` as ``{"rate": "20", "size": "10M"}``; a malformed one or a
    name given twice is a UsageError."""
    parsed: dict[str, str] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        name = name.strip()
        if not equals or not name.isidentifier():
            raise UsageError(f"{option} {_short(assignment)}: give a parameter as NAME=VALUE, e.g. {option} rate=20")
        if name in parsed:
            raise UsageError(f"{option} {name} is given twice; give it once (a sweep takes its values together: "
                             f"{option} {name}=10,20)")
        parsed[name] = value
    return parsed


def split_values(text: str, name: str, option: str = "-p") -> list[str]:
    """A sweep's values of one parameter: ``"10,20,50"`` as ``["10", "20", "50"]`` (each once,
    in the order given)."""
    values = [value.strip() for value in text.split(",")]
    if not text.strip() or any(not value for value in values):
        raise UsageError(f"{option} {name}={_short(text)}: give its values separated by commas, e.g. {option} {name}=10,20")
    if len(set(values)) != len(values):
        raise UsageError(f"{option} {name}={_short(text)}: a value is given twice; give each value once")
    return values


class ExperimentArguments:
    """The keyword arguments an experiment function is called with (``given``: text from
    ``-p``, or Python values), asked for by ``load_experiment_file`` with the file's
    ``experiment``. Afterwards ``parameters`` holds every parameter's value, defaults included,
    and ``declared`` the parameters themselves."""

    def __init__(self, given: Mapping[str, object], source: str, option: str = "-p") -> None:
        self.given = dict(given)
        self.source = source
        self.option = option
        self.declared: dict[str, Parameter] = {}
        self.unsettable: dict[str, str] = {}
        self.parameters: dict[str, Value] = {}

    def __call__(self, experiment: object) -> dict[str, Value]:
        from ..model.experiment import Experiment

        if isinstance(experiment, Experiment) or not callable(experiment):
            if self.given:
                raise UsageError(f"{self.option} {next(iter(self.given))}: {self.source}'s experiment is made when the "
                                 "file loads and takes no parameters; define def experiment(nodes, "
                                 f"{next(iter(self.given))}=...) to take them")
            return {}
        self.declared, self.unsettable = declared_parameters(experiment)
        self.parameters = typed(self.declared, self.given, self.source, self.option, self.unsettable)
        return dict(self.parameters)
