"""A result the restricted loader refused: kept in its place, apart from a task's own Failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from returns.primitives.exceptions import UnwrapFailedError

#: the ``type`` of a refused result in JSON (a task's own results are Success or Failure)
REFUSED = "Refused"


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

    def unwrap(self) -> Any:
        raise UnwrapFailedError(self)  # type: ignore[arg-type]

    def failure(self) -> str:
        return self.message

    def value_or(self, default: Any) -> Any:
        return default

    def to_json(self) -> dict[str, Any]:
        return {"type": REFUSED, "value": self.message, "refers_to": self.refers_to, "returned": self.returned}

    def __repr__(self) -> str:
        return (f"<Refused {self.returned}: refers to {self.refers_to}; load it with "
                f"`unicorn-ansible results {self.run} --trust`>")

    __str__ = __repr__
