"""What travels to hosts inside a pipeline's pickle, and how.

The rule (the README states it for users):

- the user's own code travels **by value**, inside the pickle: every module that is
  neither part of the standard library nor installed in the controller's site-packages
  (the experiment file, modules and packages next to it, an editable install, a script's
  or a notebook's ``__main__``), and the model's own modules, since hosts have no
  unicorn-ansible;
- installed third-party packages travel **by reference**: the host imports them, so a
  requirement of the task that uses them must install them (``pip install ...``).

When a pipeline cannot be pickled, the task and the attribute that cannot are named.
The installed packages a pipeline refers to are listed with the tasks that use them
(``Shipment.imports``), so a host that cannot import one says which task needs it and
what to install.
"""

from __future__ import annotations

import contextlib
import copy
import dis
import functools
import importlib.machinery
import importlib.util
import io
import os
import pickle
import site
import sys
import sysconfig
import threading
import types
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import cloudpickle
from cloudpickle import cloudpickle as _cloudpickle

from . import environment as _environment
from . import flags as _flags
from . import foreign
from . import graph as _graph
from . import pipeline as _pipeline
from . import shipped as _shipped
from . import task as _task
from .node_pickle import FileKeepingPickler
from .task import Task

#: the model's modules: hosts have no unicorn-ansible, so what a pipeline refers to travels by value
SHIPPED_MODULES = (_task, _environment, _pipeline, _graph, _flags, _shipped)
#: top-level packages the node bundle carries or hosts always have: never a requirement
ON_EVERY_HOST = frozenset({"builtins", "__main__", "cloudpickle", "returns", "typing_extensions"})
#: never registered by value: the controller's own package (its model modules are, above)
_NEVER_BY_VALUE = ("unicorn_ansible", "cloudpickle", "returns", "typing_extensions")
#: code that travels by value but is not the user's: the model's modules, netunicorn's
_OUR_CODE = ("unicorn_ansible", "netunicorn")
#: module attributes that describe how this process imported it: meaningless on a host
_IMPORT_STATE = ("__builtins__", "__loader__", "__spec__", "__cached__")

T = TypeVar("T")

#: the name the experiment file is loaded under (engine/lifecycle.py)
EXPERIMENT_MODULE = "__unicorn_experiment__"

#: re-entrant: pickling may import a user's module that builds an experiment (model/travel.py's _users_module)
_pickle_lock = threading.RLock()
_verdicts: dict[str, bool] = {}  # a module file -> whether it is the user's own code


def _installed_roots() -> tuple[str, ...]:
    """Folders whose modules are installed (standard library, site-packages), as path prefixes."""
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    roots.add(site.getusersitepackages())
    roots.update(entry for entry in sys.path if os.path.basename(entry) in ("site-packages", "dist-packages"))
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots if root)


def _module_file(module: types.ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    if not file:
        path = list(getattr(module, "__path__", None) or [])  # a namespace package: its first folder
        file = path[0] if path else None
    return file if isinstance(file, str) else None


def is_users_code(module: types.ModuleType, roots: tuple[str, ...]) -> bool:
    """True for a module that is neither standard library nor installed: the user's own code."""
    name = getattr(module, "__name__", "")
    if not isinstance(name, str) or name == "__main__" or name.split(".")[0] in _NEVER_BY_VALUE:
        return False
    file = _module_file(module)
    if file is None or file.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        return False  # built in, frozen, or compiled: it cannot travel as code
    if file not in _verdicts:
        _verdicts[file] = not os.path.realpath(file).startswith(roots)
    return _verdicts[file]


def users_modules() -> list[types.ModuleType]:
    """The user's own modules this process has imported (see the module docstring's rule)."""
    roots = _installed_roots()
    return [module for module in list(sys.modules.values())
            if isinstance(module, types.ModuleType) and is_users_code(module, roots)]


@contextlib.contextmanager
def _model_by_value() -> Iterator[None]:
    """While pickling: the model's modules and the user's code register to travel by value, and
    the code of the other libraries in use that hosts do without (netunicorn's: model/foreign.py)."""
    with _pickle_lock:
        modules = list(SHIPPED_MODULES) + foreign.by_value() + users_modules()
        registered = [m for m in modules if not _cloudpickle._is_registered_pickle_by_value(m)]
        for module in registered:
            cloudpickle.register_pickle_by_value(module)
        try:
            yield
        finally:
            for module in registered:
                cloudpickle.unregister_pickle_by_value(module)


def _module_state(module: types.ModuleType) -> dict[str, object]:
    state = {key: value for key, value in vars(module).items() if key not in _IMPORT_STATE}
    if "__path__" in state:
        state["__path__"] = list(state["__path__"])
    return state


@functools.lru_cache(maxsize=4096)
def _code_imports(code: types.CodeType) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    """The imports ``code`` (and the code defined in it) runs: (name, level, fromlist) each."""
    found: list[tuple[str, int, tuple[str, ...]]] = []
    constants: list[object] = [None, None]
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME":
            level, fromlist = constants[-2], constants[-1]
            found.append((str(instruction.argval), level if isinstance(level, int) else 0,
                          tuple(str(name) for name in fromlist) if isinstance(fromlist, tuple) else ()))
        elif instruction.opname == "LOAD_CONST":
            constants = [constants[-1], instruction.argval]
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            found.extend(_code_imports(constant))
    return tuple(found)


def _imported_when_run(func: types.FunctionType) -> Iterator[str]:
    """The modules an import inside ``func`` names, with their parent packages (``import a.b``
    needs ``a`` and ``a.b``) and, after ``from a import b``, ``a.b``."""
    package = func.__globals__.get("__package__") or ""
    for name, level, fromlist in _code_imports(func.__code__):
        try:
            base = importlib.util.resolve_name("." * level + name, package) if level else name
        except (ImportError, ValueError):
            continue  # a relative import outside a package: it fails on the controller too
        parts = base.split(".")
        yield from (".".join(parts[:end]) for end in range(1, len(parts) + 1))
        yield from (f"{base}.{attribute}" for attribute in fromlist if attribute != "*")


class NodePickler(FileKeepingPickler):
    """cloudpickle's Pickler that also sends module objects of the user's code by value, even
    when they import each other (a shell module first, its namespace after), rebuilt on the
    host under their own names (model/shipped.py); the user's modules that a function
    imports when it runs travel with it. It notes the modules it sends by reference
    (``by_reference``)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.by_reference: set[str] = set()
        #: the user's modules this pickler registered to travel by value (dump unregisters them)
        self.registered: list[types.ModuleType] = []
        #: the classes this pickle carries by value, by id (``carrying_classes`` adds the table)
        self.classes: dict[str, type] = {}
        self._roots = _installed_roots()

    def dump(self, obj: object) -> None:
        try:
            super().dump(obj)
        finally:
            for module in self.registered:
                cloudpickle.unregister_pickle_by_value(module)
            self.registered.clear()

    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, types.ModuleType):
            if _cloudpickle._is_registered_pickle_by_value(obj):
                return _shipped.restore_module, (obj.__name__,), _module_state(obj)
            self.by_reference.add(obj.__name__)
            return NotImplemented
        by_reference = isinstance(obj, types.BuiltinFunctionType) or (
            isinstance(obj, (type, types.FunctionType)) and _cloudpickle._should_pickle_by_reference(obj))
        if by_reference:
            self.by_reference.add(str(getattr(obj, "__module__", None) or ""))
        elif isinstance(obj, type) and obj.__module__ != "builtins":  # its code travels in this pickle
            self.classes[class_id(obj)] = obj
        return super().reducer_override(obj)

    def _dynamic_function_reduce(self, func: types.FunctionType) -> Any:
        reduced = super()._dynamic_function_reduce(func)
        names = dict.fromkeys(_imported_when_run(func))
        imported = [module for module in map(self._users_module, names) if module]
        # the others the user's code imports when it runs are installed ones (or the standard
        # library's): listed with the task that needs them, so a host without them says what to install
        if str(getattr(func, "__module__", "")).split(".")[0] not in _OUR_CODE:
            self.by_reference.update(top for top in {name.split(".")[0] for name in names}
                                     if top not in sys.modules or not is_users_code(sys.modules[top], self._roots))
        if imported:  # cloudpickle's own slot for modules that must be loaded with the function
            slotstate = reduced[2][1]
            slotstate["_cloudpickle_submodules"] = [*slotstate["_cloudpickle_submodules"], *imported]
        return reduced

    def _users_module(self, name: str) -> types.ModuleType | None:
        """The user's module ``name``, registered to travel by value; imported here first if
        nothing imported it yet (its code runs, as it would with ``python exp.py``), unless it
        fails to import here (a module for hosts only: the host says it is missing)."""
        top = name.split(".")[0]
        if top in sys.modules:
            if not is_users_code(sys.modules[top], self._roots):
                return None
        else:
            try:  # a top-level spec imports nothing
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError):
                return None
            origin = spec.origin if spec is not None else None
            if not isinstance(origin, str) or os.path.realpath(origin).startswith(self._roots):
                return None  # not found, built in, or installed: never imported here for its host
        module = sys.modules.get(name)
        if module is None:
            try:
                if importlib.util.find_spec(name) is None:
                    return None  # a name imported from a module (from a import f), not a module
                module = importlib.import_module(name)
            except (Exception, SystemExit):
                return None
        if not is_users_code(module, self._roots):
            return None
        if not _cloudpickle._is_registered_pickle_by_value(module):
            cloudpickle.register_pickle_by_value(module)
            self.registered.append(module)
        return module


# -- the classes a pickle carries -------------------------------------------------------------
#: every class this process pickled by value, and its id: results refer to it by that id
_class_ids: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()
_classes_by_id: weakref.WeakValueDictionary[str, type] = weakref.WeakValueDictionary()


def class_id(cls: type) -> str:
    """The id of a class pickled by value: a random one, the same each time this process pickles it."""
    with _pickle_lock:
        found = _class_ids.get(cls)
        if found is None:
            found = _class_ids[cls] = uuid.uuid4().hex
            _classes_by_id[found] = cls
        return found


def shipped_classes() -> dict[str, type]:
    """The classes this process pickled by value (those still alive), by id."""
    with _pickle_lock:
        return dict(_classes_by_id)


class _CarryingClasses:
    """A pipeline's pickle: the pipeline, and after it the table of the classes the pickle carries
    by value (filled while the pipeline is pickled), which the loaded pipeline keeps as its
    ``SHIPPED_CLASSES`` attribute (model/shipped.py): the host refers to those classes in its
    results by id (node/outcome.py) and the controller's loader admits them by it
    (results/safe_pickle.py), whatever cloudpickle keeps of its own."""

    def __init__(self, obj: object, classes: dict[str, type]) -> None:
        self.obj, self.classes = obj, classes

    def __reduce__(self) -> tuple[Any, tuple[object, dict[str, type]]]:
        return _shipped.with_classes, (self.obj, self.classes)


def _dumps(obj: object, carrying_classes: bool = False) -> tuple[bytes, set[str]]:
    """The pickle of ``obj`` (with the table of its classes if ``carrying_classes``) and the
    third-party top-level packages it refers to by reference."""
    buffer = io.BytesIO()
    pickler = NodePickler(buffer)
    pickler.dump(_CarryingClasses(obj, pickler.classes) if carrying_classes else obj)
    tops = {name.split(".")[0] for name in pickler.by_reference if name}
    return buffer.getvalue(), {top for top in tops if top not in sys.stdlib_module_names and top not in ON_EVERY_HOST
                               and top not in _NEVER_BY_VALUE}


def for_node(obj: T) -> T:
    """``obj`` as a host gets it: a Pipeline run stage by stage loses its networkx graph (hosts
    have no networkx; they run the stages)."""
    if isinstance(obj, _pipeline.Pipeline) and obj._made_graph() is not None and _pipeline.as_graph(obj) is None:
        obj = copy.copy(obj)
        obj.graph = None
    return obj


def serialize_for_node(obj: object) -> bytes:
    """Pickle an object for a host that has only Python, cloudpickle and returns."""
    with _model_by_value():
        return _dumps(for_node(obj), carrying_classes=True)[0]


@dataclass
class Shipment:
    """A node's pickled pipeline, and the installed packages its tasks import on the host:
    ``imports`` maps a top-level module to ``{"tasks": [...], "install": "pip install ..."}``."""

    pipeline: bytes
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)


class UnpicklableError(Exception):
    """A pipeline cannot travel: ``message`` names the task and the attribute."""


def ship(pipeline: object, tasks: list[Task]) -> Shipment:
    """Pickle ``pipeline`` (whose tasks are ``tasks``) for its host; an UnpicklableError names
    the task and the attribute that cannot be pickled."""
    with _model_by_value():
        try:
            data, third_party = _dumps(for_node(pipeline), carrying_classes=True)
        except Exception as exc:
            raise UnpicklableError(_explain(exc, tasks)) from exc
        imports = _imports_by_task(third_party, tasks) if third_party else {}
    return Shipment(data, imports)


def _task_name(task: object) -> str:
    return str(getattr(task, "name", type(task).__name__))


def _imports_by_task(third_party: set[str], tasks: list[Task]) -> dict[str, dict[str, Any]]:
    users: dict[str, list[str]] = {top: [] for top in sorted(third_party)}
    for task in tasks:
        try:
            needed = _dumps(task)[1]
        except Exception:
            continue
        for top in needed & third_party:
            users[top].append(_task_name(task))
    return {top: {"tasks": names, "install": f"pip install {distribution_of(top)}"} for top, names in users.items()}


def distribution_of(top: str) -> str:
    """The distribution that installed the top-level module ``top`` here (PyYAML for yaml)."""
    from importlib.metadata import packages_distributions

    names = packages_distributions().get(top) or [top]
    return names[0]


# -- naming what cannot be pickled ---------------------------------------------------------------
def _explain(exc: Exception, tasks: list[Task]) -> str:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    for task in tasks:
        if _picklable(task):
            continue
        found = _culprit(task, f"self (task {_task_name(task)})", set(), 0)
        what = found[0] if found else "an attribute"
        kind = type(found[1]).__name__ if found else "?"
        return (f"task {_task_name(task)} cannot be sent to its host: {what} (a {kind}) cannot be pickled "
                f"({reason}); create it inside run(), or keep only picklable values at module level and in "
                "the task's attributes")
    return f"the pipeline cannot be pickled ({reason}); keep only picklable values in it"


def _picklable(obj: object) -> bool:
    try:
        _dumps(obj)
    except Exception:
        return False
    return True


_GLOBAL_OPS = frozenset(dis.opmap[name] for name in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"))


def code_globals(code: types.CodeType) -> dict[str, None]:
    """The global names ``code`` (and every function defined inside it) reads or writes, in the
    order first used: what pickling a function by value takes from its module (ours, from dis:
    cloudpickle keeps its own in a private function)."""
    names = dict.fromkeys(str(instruction.argval) for instruction in dis.get_instructions(code)
                          if instruction.opcode in _GLOBAL_OPS)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names.update(code_globals(constant))
    return names


def _children(obj: object, label: str) -> Iterable[tuple[str, object]]:
    """What pickling ``obj`` pickles in turn, each with a label a user recognises."""
    if isinstance(obj, types.ModuleType):
        return ((f"{obj.__name__}.{key}", value) for key, value in _module_state(obj).items())
    if isinstance(obj, types.FunctionType):
        names = code_globals(obj.__code__)
        module = _module_label(getattr(obj, "__module__", "?"), obj.__globals__.get("__file__"))
        cells = [(f"{obj.__qualname__}'s closure", cell.cell_contents) for cell in obj.__closure__ or ()
                 if _has_contents(cell)]
        return [(f"{module}.{name}", obj.__globals__[name]) for name in names if name in obj.__globals__] + cells
    if isinstance(obj, type):
        return ((f"{obj.__qualname__}.{key}", getattr(value, "__func__", value)) for key, value in vars(obj).items()
                if isinstance(value, (types.FunctionType, staticmethod, classmethod)))
    attributes = vars(obj) if hasattr(obj, "__dict__") else {}
    prefix = "attribute " if label.startswith("self") else f"{label}."
    return [(f"{prefix}{key}", value) for key, value in attributes.items()] + [(type(obj).__qualname__, type(obj))]


def _module_label(name: str, file: object) -> str:
    """A module's name as its user knows it: the experiment file (loaded under a name of ours) by its file's."""
    if name == EXPERIMENT_MODULE and isinstance(file, str) and file:
        return os.path.splitext(os.path.basename(file))[0]
    return name


def _has_contents(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (reading an empty cell raises)
    except ValueError:
        return False
    return True


def _culprit(obj: object, label: str, seen: set[int], depth: int) -> tuple[str, object] | None:
    """The innermost value reachable from ``obj`` that cannot be pickled, with its label."""
    if id(obj) in seen or depth > 8:
        return None
    seen.add(id(obj))
    for child_label, child in _children(obj, label):
        if id(child) in seen or _picklable(child):
            continue
        return _culprit(child, child_label, seen, depth + 1) or (child_label, child)
    return None
