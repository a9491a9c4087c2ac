"""Cloudpickle for hosts, with tracebacks that name the experiment's file.

cloudpickle replaces the file name of every function it pickles by value with
``<dynamic-code>`` (for deterministic payloads), so a task's traceback on a host would
say ``File "<dynamic-code>", line 4, in run``. This pickler keeps the real file name;
nothing else about the payload changes, and hosts need nothing new to load it.
"""

from __future__ import annotations

import types
from collections import ChainMap
from collections.abc import Callable
from typing import Any, ClassVar

import cloudpickle
from cloudpickle import cloudpickle as _cloudpickle_module

#: the name cloudpickle gives every pickled code object's file
_DYNAMIC = "<dynamic-code>"


def _code_reduce_keeping_file(code: types.CodeType) -> tuple[Callable[..., types.CodeType], tuple[object, ...]]:
    constructor, args = _cloudpickle_module._code_reduce(code)
    return constructor, tuple(code.co_filename if arg == _DYNAMIC else arg for arg in args)


class FileKeepingPickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle has no type hints
    """cloudpickle's Pickler, code objects keeping their file names."""

    dispatch_table: ClassVar[ChainMap[type, Callable[[Any], object]]] = ChainMap({types.CodeType: _code_reduce_keeping_file}, cloudpickle.Pickler.dispatch_table)
