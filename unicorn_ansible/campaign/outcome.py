"""What a campaign says of a run's failures: one bounded line each (a combination's error, the
table's ``error`` column)."""

from __future__ import annotations

from typing import Any

from returns.pipeline import is_successful

from ..node.outcome import bounded_repr
from ..results.load import RunResults
from .records import MAX_ERROR


def one_line(text: str) -> str:
    """``text`` on one line, at most MAX_ERROR characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR else line[: MAX_ERROR - 3] + "..."


def failed(result: Any) -> bool:
    """Whether a task's result is not a Success (a Failure, or a result the loader refused)."""
    return not is_successful(result)


def failure_of(result: Any) -> str:
    """A failed result's text (a Failure's value; a refused result's explanation), one line."""
    value = result.failure()
    return one_line(value if isinstance(value, str) else bounded_repr(value, MAX_ERROR))


def failure_text(results: RunResults, record: dict[str, Any]) -> str | None:
    """Why a run did not succeed: the run's own error, else the first failed node's first failed
    task's text, or the node's error; None for a run that succeeded."""
    if record.get("error"):
        return one_line(str(record["error"]))
    for node in results:
        if node.success:
            continue
        for task, runs in node.tasks.items():
            for result in runs:
                if failed(result):
                    return one_line(f"{node.executor_id}: task {task}: {failure_of(result)}")
        return one_line(f"{node.executor_id}: {node.status}: {node.error or 'no error text'}")
    return None if results.success else "the run has no nodes"
