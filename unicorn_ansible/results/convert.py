"""Results as JSON: ``{"type": "Success" | "Failure", "value": ...}``, bounded where it is text.

A value JSON can say is kept as it is, unless written out it would be far larger than what it
holds (shared references: :func:`writes_out_small`); anything else is its ``repr``, cut at
:data:`REPR_LIMIT` characters and written with that budget (node/shown.py).
A result refused by the restricted loader, or left unloaded for a view, says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from returns.pipeline import is_successful
from returns.result import Result

from ..node.protocol import FAILURE, SUCCESS
from ..node.shown import bounded_repr
from ..node.wire import JSONObject, JSONValue
from .refused import Abbreviated, Refused, ResultLike

REPR_LIMIT = 10_000
#: a value is JSON only while written out it is at most this many characters, or this many times what
#: it holds (each object once): the views' work stays proportional to what the hosts sent
WRITTEN_OUT_FLOOR = 16 * 1024
WRITTEN_OUT_FACTOR = 32


def view_repr(value: object) -> str:
    """A value as text of at most about :data:`REPR_LIMIT` characters (never its whole repr)."""
    return bounded_repr(value, REPR_LIMIT)


def result_to_json(result: object) -> JSONObject:
    """``{"type": "Success" | "Failure", "value": <JSON, or repr where not JSON>}``.

    A repr longer than 10,000 characters is cut and says how much is left out; the
    full value is in the Result objects (Python API, ``NodeResult.tasks``). A result
    not loaded for a view is its preview, with ``"abbreviated": <payload bytes>``."""
    if isinstance(result, Abbreviated):
        return {"type": result.type, "value": result.preview, "abbreviated": result.size}
    if isinstance(result, Refused):
        return result.to_json()
    if isinstance(result, Result):
        kind = SUCCESS if is_successful(result) else FAILURE
        inner: object = result.unwrap() if kind == SUCCESS else result.failure()
    else:
        kind, inner = SUCCESS, result
    value: JSONValue = view_repr(inner)
    if writes_out_small(inner):
        try:
            json.dumps(inner, allow_nan=False)
            value = inner  # type: ignore[assignment]  # JSON can say it (checked above)
        except (TypeError, ValueError):
            pass
    return {"type": kind, "value": value}


def _members(value: object) -> tuple[list[object], int] | None:
    """What JSON writes of a list, tuple or dict: the members it descends into and the characters
    of the rest (brackets, separators, a dict's keys); None for anything else (a leaf)."""
    if isinstance(value, (list, tuple)):
        return list(value), 2 + len(value)
    if isinstance(value, dict):
        return list(value.values()), 2 + sum(_leaf_size(key) + 2 for key in value)
    return None


def _leaf_size(value: object) -> int:
    return len(value) + 2 if isinstance(value, str) else 8


def writes_out_small(value: object) -> bool:
    """Whether ``value`` written out as JSON stays within :data:`WRITTEN_OUT_FLOOR` characters or
    :data:`WRITTEN_OUT_FACTOR` times the size of what it holds (each object counted once). A value
    that shares references (``a = [a, a]`` 34 times: 260 bytes of pickle, 2**34 lists written out) does
    not: ``json.dumps`` would write every reference out. Each object is walked once (a cycle: not small)."""
    written: dict[int, int] = {}  # a container's size written out, by id (kept alive by ``value``)
    held = 0  # the size of every container counted once
    path: set[int] = set()
    pending: list[tuple[object, bool]] = [(value, False)]
    while pending:
        item, closing = pending.pop()
        read = _members(item)
        if read is None:
            continue
        members, own = read
        if closing:
            path.discard(id(item))
            leaves = [m for m in members if _members(m) is None]
            held += own + sum(_leaf_size(m) for m in leaves)
            written[id(item)] = own + sum(_leaf_size(m) if _members(m) is None else written[id(m)] for m in members)
        elif id(item) in path:
            return False  # a cycle: JSON cannot say it
        elif id(item) not in written:
            path.add(id(item))
            pending.append((item, True))
            pending.extend((m, False) for m in members if id(m) not in written)
    size = written.get(id(value), _leaf_size(value))
    return size <= max(WRITTEN_OUT_FLOOR, WRITTEN_OUT_FACTOR * held)


def shape_to_json(entry: ResultLike | list[ResultLike]) -> JSONValue:
    """One entry of the tutorial's shape: a stage's result, or a parallel stage's list of them."""
    if isinstance(entry, list):
        return [result_to_json(r) for r in entry]
    return result_to_json(entry)


def by_name_to_json(results: Mapping[str, list[ResultLike]]) -> JSONObject:
    """netunicorn's shape: task name -> its results, each as JSON."""
    return {name: [result_to_json(r) for r in runs] for name, runs in results.items()}
