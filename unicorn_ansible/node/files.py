"""Small file helpers of the node side: atomic writes (JSON or any bytes), kernel copies; JSON reads
are the wire's (:func:`unicorn_ansible.node.wire.read_json`, bounded, an object or None)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import BinaryIO

from .wire import read_json

__all__ = ["atomic_file", "copy_range", "read_json", "write_json_atomic"]


@contextlib.contextmanager
def atomic_file(path: str, mode: int | None = None, raw: bool = False) -> Iterator[BinaryIO]:
    """A file for ``path`` to write through the handle given (with permissions ``mode``, if
    given): readers see the old file or the new one, never half; nothing if the block raises.
    ``raw``: unbuffered, for writes that mix the handle and its descriptor (:func:`copy_range`)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb", buffering=0 if raw else -1) as handle:
            if mode is not None:
                os.chmod(tmp, mode)
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str, data: object) -> None:
    """Write ``data`` (what ``json.dumps`` takes) as JSON to ``path`` (see :func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(json.dumps(data).encode("utf-8"))


def copy_range(source: int, target: int, count: int, offset: int | None = None) -> None:
    """Copy ``count`` bytes from file descriptor ``source`` (at ``offset``, or its position) to
    ``target``'s position, inside the kernel where it can (copy_file_range), else by reading."""
    if count and hasattr(os, "copy_file_range"):
        try:
            while count:
                copied = os.copy_file_range(source, target, count, offset)
                if not copied:
                    raise EOFError(f"the file ended {count} bytes early")
                count -= copied
                if offset is not None:
                    offset += copied
            return
        except OSError:  # another file system, an old kernel: the portable way
            pass
    if offset is not None:
        os.lseek(source, offset, os.SEEK_SET)
    while count:
        chunk = os.read(source, min(count, 1 << 20))
        if not chunk:
            raise EOFError(f"the file ended {count} bytes early")
        os.write(target, chunk)
        count -= len(chunk)
