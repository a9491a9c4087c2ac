"""The node bundle: one zipapp with the node package, cloudpickle and returns.

Hosts need nothing but a Python of the controller's major.minor version: the
bundle carries the node package (``unicorn_ansible/node``, as the top-level
package ``unicorn_node``: its modules import each other relatively, so it runs
under either name) and its pure-Python dependencies. It is built once per
content and cached in the home folder; the compiler adds each node's own files
under ``node/``.
"""

from __future__ import annotations

import hashlib
import io
import py_compile
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import cloudpickle
import returns
import typing_extensions

from ..engine.rundir import write_atomic
from ..home import home_dir
from ..node.protocol import BUNDLE_NODE_FILES, BUNDLE_PACKAGE, BUNDLE_TASK_API, NODE_BUNDLE
from ..resources import node_package_dir

BUNDLE_NAME = "unicorn-executor.pyz"  # the cached bundle without any node's files
NODE_BUNDLE_NAME = NODE_BUNDLE
# Checked before anything else is imported: the bundled libraries and the pickled
# pipelines are for the controller's Python major.minor.
_MAIN = """import json
import sys

EXPECTED = {expected!r}
if "%d.%d" % sys.version_info[:2] != EXPECTED:
    here = "%d.%d" % sys.version_info[:2]
    print(json.dumps({{"ok": False, "skipped": False, "python": here, "error": (
        "this host has Python " + here + " (" + sys.executable + ") but the controller has Python " + EXPECTED
        + "; pipelines are pickled for Python " + EXPECTED + ": set ansible_python_interpreter to a Python "
        + EXPECTED + " on this host")}}))
    sys.exit(1)

from {package}.__main__ import main
sys.exit(main())
"""


def _package_files(module: object) -> Iterable[tuple[str, Path]]:
    path = Path(module.__file__)  # type: ignore[attr-defined]
    if path.name != "__init__.py":
        yield path.name, path
        return
    root = path.parent
    for file in sorted(root.rglob("*.py")):
        relative = file.relative_to(root.parent)
        if "contrib" in relative.parts:  # mypy/pytest/hypothesis plugins: never used on a host
            continue
        yield relative.as_posix(), file


def _compiled(name: str, source: bytes) -> bytes:
    """Byte code for ``source`` (unchecked hash-based .pyc): zipimport would otherwise compile
    every module from source in every process the bundle starts on a host."""
    with tempfile.TemporaryDirectory(prefix="unicorn-pyc-") as scratch:
        source_path, compiled_path = Path(scratch) / "module.py", Path(scratch) / "module.pyc"
        source_path.write_bytes(source)
        py_compile.compile(str(source_path), cfile=str(compiled_path), dfile=name, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        return compiled_path.read_bytes()


#: ``import unicorn_ansible`` inside a task's run() on a host: the flag functions and Result types
_TASK_API = """\"\"\"What a task may import from unicorn_ansible on a host (inside run()): flags and Results.\"\"\"
from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from .model.flags import (AtomicDecrementFlagTask, AtomicIncrementFlagTask, FlagError, FlagValues, GetFlagTask,
                          SetFlagTask, WaitForExactFlagResultTask, decrement_flag, get_flag, increment_flag, set_flag,
                          wait_for_flag)
from .model.task import Task, TaskDispatcher
"""


def _task_api() -> dict[str, bytes]:
    """A small ``unicorn_ansible`` package for tasks that import it inside run() on a host (the
    model's modules they need, never the controller's engine)."""
    model = Path(__file__).resolve().parent.parent / "model"
    package = f"{BUNDLE_TASK_API}/unicorn_ansible"
    return {f"{package}/__init__.py": _TASK_API.encode(), f"{package}/model/__init__.py": b"",
            f"{package}/model/flags.py": (model / "flags.py").read_bytes(),
            f"{package}/model/task.py": (model / "task.py").read_bytes()}


def _sources() -> dict[str, bytes]:
    expected = "%d.%d" % sys.version_info[:2]
    members: dict[str, bytes] = {"__main__.py": _MAIN.format(expected=expected, package=BUNDLE_PACKAGE).encode()}
    for path in sorted(node_package_dir().glob("*.py")):
        members[f"{BUNDLE_PACKAGE}/{path.name}"] = path.read_bytes()
    members.update(_task_api())
    for module in (cloudpickle, returns, typing_extensions):
        for name, path in _package_files(module):
            members[name] = path.read_bytes()
    return members


def bundle_members() -> dict[str, bytes]:
    """The bundle's files: sources and their byte code for this Python."""
    members = _sources()
    for name in [n for n in members if n.endswith(".py")]:
        members[name + "c"] = _compiled(name, members[name])
    return members


def build_bundle(cache_dir: Path | None = None) -> Path:
    """The path of the bundle for the current sources and Python, building it if needed."""
    sources = _sources()
    digest = hashlib.sha256(sys.version.encode())
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name] + b"\0")
    folder = cache_dir or home_dir() / "bundles"
    target = folder / f"{digest.hexdigest()[:16]}-{BUNDLE_NAME}"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    members = bundle_members()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, members[name])
    write_atomic(target, b"#!/usr/bin/env python3\n" + buffer.getvalue())
    return target


#: each node's part of its bundle, beside that node's readable copies of its files
NODE_TAIL_NAME = f"{NODE_BUNDLE}.tail"
#: the part of every node's bundle they all share, once in the run's files/
BUNDLE_HEAD_NAME = f"{NODE_BUNDLE}.head"
_END_OF_DIRECTORY = b"PK\x05\x06"


class NodeBundles:
    """Node bundles of one base, kept split where a node's own files begin: the ``head`` every node
    shares (the base up to its zip directory, written into the run once) and, per node, a ``tail``
    (its files under ``node/`` and the directory of all). ``head + tail`` is that node's zipapp,
    which the deployment's action puts together as it ships it: 10,000 hosts keep one 700 KB head,
    not 10,000 copies of it."""

    def __init__(self, base: Path) -> None:
        self.base = base.read_bytes()
        end = self.base.rfind(_END_OF_DIRECTORY)
        if end < 0:
            raise ValueError(f"{base} is not a zip archive")
        directory_size = int.from_bytes(self.base[end + 12:end + 16], "little")
        self.head = self.base[:end - directory_size]  # what appending writes after (zipfile's "a" mode)

    def tail(self, files: dict[str, bytes]) -> bytes:
        """One node's tail: its files (pipeline, specifications) under ``node/`` and the directory."""
        whole = node_bundle(self.base, files)
        if not whole.startswith(self.head):
            raise RuntimeError("a node bundle does not begin with the base bundle's head")
        return whole[len(self.head):]


def node_bundle(base: bytes, files: dict[str, bytes]) -> bytes:
    """The bundle with one node's files (pipeline, specifications) added under ``node/``:
    what the deployment play ships to that host, in a single transfer."""
    buffer = io.BytesIO(base)
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"{BUNDLE_NODE_FILES}{name}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return buffer.getvalue()
