"""A task's outcome as a Result: the Result semantics, the pickling for the controller, previews.

The one place where what a task did becomes a Result. Results go back to the
controller, which loads them as untrusted data: classes the experiment shipped
(pickled by value into the pipeline) are referred to by the id the controller gave
them (the pipeline's table, ``SHIPPED_CLASSES``), never sent back as code (see
unicorn_ansible/results/safe_pickle.py).
"""

from __future__ import annotations

import io
import pickle
import reprlib
import sys
import traceback
from collections.abc import Mapping
from typing import IO, Protocol

import cloudpickle
from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from .protocol import FAILURE, SHIPPED_CLASS, SHIPPED_CLASSES, SUCCESS
from .wire import ImportNeed

#: what a task returns, as a Result (anything is its value or error)
TaskResult = Result[object, object]


class Runnable(Protocol):
    """A task: its ``run()`` (netunicorn's and ours alike)."""

    def run(self) -> object: ...


def as_result(value: object) -> TaskResult:
    """What ``run()`` returned, as a Result: a Result is kept as is, anything else becomes Success(value)."""
    if isinstance(value, Result):
        return value
    return Success(value)


#: top-level module -> the requirement that installs it (``pip install PyYAML`` for yaml), from
#: the controller (node.json's imports); the executor sets it before its tasks start
INSTALLS: dict[str, str] = {}


def learn_installs(imports: Mapping[str, ImportNeed]) -> None:
    """Keep the controller's requirement for each installed module the pipeline imports."""
    INSTALLS.update({top: needed.install for top, needed in imports.items() if needed.install})


def call_task(task: Runnable, log: IO[str] | None = None) -> TaskResult:
    """Run ``task.run()`` and apply the Result semantics.

    An exception becomes ``Failure(str(exception))``; its full traceback goes
    to ``log`` (the task's log, stderr by default).
    """
    try:
        return as_result(task.run())
    except ModuleNotFoundError as exc:  # an import in run(): say how a host gets it
        traceback.print_exc(file=log or sys.stderr)
        top = (exc.name or "?").split(".")[0]
        install = INSTALLS.get(top, f"pip install {top}")
        return Failure(f"{exc}; install it on the host with a requirement of this task: "
                       f"requirements = [{install!r}]")
    except Exception as exc:  # the task's own error: its result, not ours
        traceback.print_exc(file=log or sys.stderr)
        return Failure(str(exc))
    except BaseException as exc:  # SystemExit, KeyboardInterrupt raised by the task
        traceback.print_exc(file=log or sys.stderr)
        return Failure(f"task ended with {type(exc).__name__}({exc})")


def result_type(result: TaskResult) -> str:
    """``Success`` or ``Failure``: a journal header's ``type``."""
    return SUCCESS if is_successful(result) else FAILURE


#: the classes the pipeline shipped, by their id, and the id of each (by the class's identity)
_SHIPPED: dict[str, type] = {}
_IDS: dict[int, str] = {}


def learn_classes(pipeline: object) -> None:
    """Know the classes ``pipeline``'s pickle carried (its SHIPPED_CLASSES table): its results
    refer to them by id. Called when the pipeline starts, before any task process is forked."""
    table = getattr(pipeline, SHIPPED_CLASSES, None)
    for class_id, cls in (table.items() if isinstance(table, dict) else ()):
        if isinstance(class_id, str) and isinstance(cls, type):
            _SHIPPED[class_id] = cls
            _IDS[id(cls)] = class_id


def _shipped_class_id(obj: object) -> tuple[str, str] | None:
    class_id = _IDS.get(id(obj)) if isinstance(obj, type) else None
    if class_id is not None and _SHIPPED.get(class_id) is obj:
        return (SHIPPED_CLASS, class_id)
    return None


def dumps_result(result: object) -> bytes:
    """Pickle a task's Result for the controller."""
    buffer = io.BytesIO()
    pickler = cloudpickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.persistent_id = _shipped_class_id
    pickler.dump(result)
    return buffer.getvalue()


def _shipped_class(pid: object) -> type:
    if isinstance(pid, tuple) and len(pid) == 2 and pid[0] == SHIPPED_CLASS and pid[1] in _SHIPPED:
        return _SHIPPED[pid[1]]
    raise pickle.UnpicklingError(f"a result refers to a class this pipeline did not ship ({pid!r})")


def loads_result(data: bytes) -> object:
    """Read back, on the node, a Result written by :func:`dumps_result`: the pipeline's data, so
    with the pipeline's own classes (this process loaded them with the pipeline) and any module
    the node's environment can import."""
    unpickler = pickle.Unpickler(io.BytesIO(data))
    unpickler.persistent_load = _shipped_class  # type: ignore[method-assign]
    return unpickler.load()


class _ShortRepr(reprlib.Repr):
    """repr that never builds the whole text of a huge value (a 200 MB bytes, a long list)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 2000
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = self.maxdict = 200
        self.maxlevel = 8

    def repr_bytes(self, value: bytes, level: int) -> str:
        if len(value) <= 200:
            return repr(value)
        return f"<{type(value).__name__} of {len(value)} bytes: {bytes(value[:64])!r}...>"

    repr_bytearray = repr_bytes


def bounded_repr(value: object, limit: int) -> str:
    """A Result (or any value) as text of at most about ``limit`` characters, built without
    the whole repr of a huge value; a Result reads as the returns library shows it."""
    try:
        if isinstance(value, Result):
            inner = value.unwrap() if is_successful(value) else value.failure()
            shown = inner[:limit] if isinstance(inner, str) else _ShortRepr().repr(inner)
            text = f"<{result_type(value)}: {shown}>"
        else:
            text = _ShortRepr().repr(value)
    except Exception as exc:  # a user's __repr__ may raise
        text = f"<unprintable {type(value).__name__}: {exc}>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def preview(result: TaskResult, limit: int = 200) -> str:
    """A journal header's ``preview``: the Result as at most ``limit`` characters."""
    text = bounded_repr(result, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."
