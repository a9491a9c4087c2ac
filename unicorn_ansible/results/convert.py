"""Results as JSON: ``{"type": "Success" | "Failure", "value": ...}``, bounded where it is text.

A value JSON can say is kept as it is; anything else is its ``repr``, cut at :data:`REPR_LIMIT`
characters and built without the whole text of a huge value (node/outcome.py's bounded repr).
A result refused by the restricted loader, or left unloaded for a view, says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from returns.pipeline import is_successful
from returns.result import Result

from ..node.outcome import bounded_repr
from ..node.protocol import FAILURE, SUCCESS
from ..node.wire import JSONObject, JSONValue
from .refused import Abbreviated, Refused, ResultLike

REPR_LIMIT = 10_000


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
    try:
        json.dumps(inner, allow_nan=False)
        value: JSONValue = inner  # type: ignore[assignment]  # JSON can say it (checked above)
    except (TypeError, ValueError):
        value = view_repr(inner)
    return {"type": kind, "value": value}


def shape_to_json(entry: ResultLike | list[ResultLike]) -> JSONValue:
    """One entry of the tutorial's shape: a stage's result, or a parallel stage's list of them."""
    if isinstance(entry, list):
        return [result_to_json(r) for r in entry]
    return result_to_json(entry)


def by_name_to_json(results: Mapping[str, list[ResultLike]]) -> JSONObject:
    """netunicorn's shape: task name -> its results, each as JSON."""
    return {name: [result_to_json(r) for r in runs] for name, runs in results.items()}
