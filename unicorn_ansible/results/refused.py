"""Stand-ins for a task's Result that was not loaded: one the restricted loader refused (kept in
its place, apart from a task's own Failure), and one a view left out for its size (its preview)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn, Protocol

from returns.primitives.exceptions import UnwrapFailedError

from ..node.protocol import SUCCESS
from ..node.shown import trust_repr
from ..node.wire import JSONObject

#: the ``type`` of a refused result in JSON (a task's own results are Success or Failure)
REFUSED = "Refused"


class ResultLike(Protocol):
    """A task's result as the results give it: a Result (returns' Success or Failure), or a
    stand-in read as one (:class:`Refused`, :class:`Abbreviated`)."""

    def unwrap(self) -> object: ...

    def failure(self) -> object: ...


def succeeded(result: ResultLike) -> bool:
    """Whether ``result`` is a Success (returns' ``is_successful``, for stand-ins too: it unwraps)."""
    try:
        result.unwrap()
    except UnwrapFailedError:
        return False
    return True


@trust_repr
@dataclass(frozen=True)
class Refused:
    """A task's result the controller did not load: it refers to ``refers_to``, which results
    from hosts may not contain. ``returned`` is what the task returned (Success or Failure).
    The raw result stays in the run folder: ``unicorn-ansible results RUN --trust`` (Python:
    ``load_results(run, trust=True)``, ``Client(trust_results=True)``) loads it fully.

    Not a Result: ``is_successful(refused)`` is False, ``unwrap()`` raises, ``failure()`` says why."""

    node: str
    run: str
    returned: str
    refers_to: str

    @property
    def message(self) -> str:
        return (f"refused: the result refers to {self.refers_to}, which results from hosts may not contain; "
                f"if you trust node {self.node}, load it with `unicorn-ansible results {self.run} --trust`")

    def unwrap(self) -> NoReturn:
        raise UnwrapFailedError(self)  # type: ignore[arg-type]

    def failure(self) -> str:
        return self.message

    def value_or(self, default: object) -> object:
        return default

    def to_json(self) -> JSONObject:
        return {"type": REFUSED, "value": self.message, "refers_to": self.refers_to, "returned": self.returned}

    def __repr__(self) -> str:
        return (f"<Refused {self.returned}: refers to {self.refers_to}; load it with "
                f"`unicorn-ansible results {self.run} --trust`>")

    __str__ = __repr__


@trust_repr
@dataclass(frozen=True)
class Abbreviated:
    """A result not loaded for a view (its payload is over the view's limit): its preview."""

    type: str
    preview: str
    size: int

    def __repr__(self) -> str:
        return f"{self.preview} ({self.size} bytes; the whole value: load_results in Python)"

    # read as the Result it stands for (is_successful, unwrap, failure), its value a preview (a string)
    def _value(self) -> str:
        text = self.preview.removeprefix(f"<{self.type}: ")
        return text[:-1] if text != self.preview and text.endswith(">") else text

    def unwrap(self) -> str:
        if self.type != SUCCESS:
            raise UnwrapFailedError(self)  # type: ignore[arg-type]
        return self._value()

    def failure(self) -> str:
        if self.type == SUCCESS:
            raise UnwrapFailedError(self)  # type: ignore[arg-type]
        return self._value()

    def value_or(self, default: object) -> object:
        return self._value() if self.type == SUCCESS else default
