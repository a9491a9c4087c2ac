"""Numbers measured again and again, as a table: one row per number a task returned.

A task's Success value counts when it is a number (field ``value``), or a dict, dataclass
or object whose fields are numbers (one row per numeric field). Repetitions come from a
CyclePipeline, a graph loop, or the same task on many nodes: ``repetition`` counts a task's
runs on its node from 0. The report plots the same rows; :func:`measurements_frame` gives
them as a pandas DataFrame where pandas is installed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, TypedDict

from .refused import succeeded

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from .model import RunResults

COLUMNS = ("node", "task", "repetition", "field", "value")


class Measurement(TypedDict):
    """One number a task returned (``node``: the executor id, the node's name for its first pipeline)."""

    node: str
    task: str
    repetition: int
    field: str
    value: float


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def numeric_fields(value: object) -> dict[str, float]:
    """The numbers in a task's value: itself (``value``), or its numeric fields."""
    number = _number(value)
    if number is not None:
        return {"value": number}
    fields: dict[object, object]
    if isinstance(value, dict):
        fields = value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
    else:
        fields = getattr(value, "__dict__", None) or {}
    found = {}
    for name, field in list(fields.items())[:100]:
        number = _number(field)
        if number is not None:
            found[str(name)] = number
    return found


def measurements(results: RunResults) -> list[Measurement]:
    """Rows ``{node, task, repetition, field, value}``, one per number a successful task returned
    (``node``: the executor id, the node's name for its first pipeline)."""
    rows: list[Measurement] = []
    for node in results:
        for task, runs in node.tasks.items():
            for repetition, result in enumerate(runs):
                if not succeeded(result):
                    continue
                for field, value in numeric_fields(result.unwrap()).items():
                    rows.append({"node": node.executor_id, "task": task, "repetition": repetition, "field": field,
                                 "value": value})
    return rows


def measurements_frame(results: RunResults) -> pandas.DataFrame:
    """The same rows as a pandas DataFrame (columns node, task, repetition, field, value)."""
    try:
        import pandas
    except ImportError as exc:
        raise ImportError("measurements_frame needs pandas (pip install pandas); "
                          "measurements(results) gives the same rows as a list of dicts") from exc
    return pandas.DataFrame(measurements(results), columns=list(COLUMNS))
