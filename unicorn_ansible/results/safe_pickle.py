"""Loading results that come back from hosts, which are untrusted data.

A host may be compromised, so its journal is never unpickled with the plain
``pickle`` module. The loader here admits only what a result can legitimately
contain: the ``returns`` Result classes, builtins and standard containers and
value types, exceptions, and the classes the experiment itself defined and
shipped. The executor refers to those shipped classes by cloudpickle's tracker
id instead of sending their code back (see ``node/outcome.py``); this side
looks the id up among the classes the controller itself pickled for the run.
Anything else is refused with an UntrustedDataError naming the node.
"""

from __future__ import annotations

import builtins
import io
import pickle
from pathlib import Path
from typing import Any, Callable, Dict, Iterable

import cloudpickle

from ..errors import UntrustedDataError
from ..node.protocol import SHIPPED_CLASS

_BUILTIN_TYPES = {
    "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list", "object", "range",
    "set", "slice", "str", "tuple", "NoneType", "Ellipsis", "NotImplemented",
}
_ALLOWED: Dict[str, set] = {
    "builtins": _BUILTIN_TYPES,
    "collections": {"OrderedDict", "deque", "defaultdict", "Counter"},
    "datetime": {"date", "datetime", "time", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "fractions": {"Fraction"},
    "uuid": {"UUID", "SafeUUID"},
    "ipaddress": {"IPv4Address", "IPv6Address", "IPv4Network", "IPv6Network", "IPv4Interface", "IPv6Interface"},
    "pathlib": {"PurePosixPath", "PosixPath", "PureWindowsPath"},
    "copyreg": {"_reconstructor"},
    "returns.result": {"Success", "Failure", "Result"},
    "returns.maybe": {"Some", "Nothing", "_Nothing", "Maybe"},
}


def _is_builtin_exception(module: str, name: str) -> bool:
    value = getattr(builtins, name, None) if module == "builtins" else None
    return isinstance(value, type) and issubclass(value, BaseException)


def shipped_classes() -> Dict[str, type]:
    """The classes this controller pickled by value (or loaded from its own pickles), by tracker id."""
    registry = getattr(cloudpickle.cloudpickle, "_DYNAMIC_CLASS_TRACKER_BY_ID", {})
    return dict(registry)


def register_shipped(pickles: Iterable[Path]) -> None:
    """Load the run's own pipeline pickles (written by this controller) so their classes are known."""
    for path in pickles:
        try:
            cloudpickle.loads(Path(path).read_bytes())
        except Exception:  # a pipeline whose modules are gone: its classes are simply not admitted
            continue


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, node: str, classes: Dict[str, type]) -> None:
        super().__init__(io.BytesIO(data))
        self.node = node
        self.classes = classes

    def find_class(self, module: str, name: str) -> Any:
        if name in _ALLOWED.get(module, ()) or _is_builtin_exception(module, name):
            return super().find_class(module, name)
        raise UntrustedDataError(
            f"results from node {self.node} refer to {module}.{name}, which a result may not contain; "
            "refusing to load them (a compromised host, or a result type to return as plain data instead)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 2 and pid[0] == SHIPPED_CLASS and pid[1] in self.classes:
            return self.classes[pid[1]]
        raise UntrustedDataError(
            f"results from node {self.node} refer to a class the experiment did not ship ({pid!r}); refusing to load them"
        )


def safe_loads(data: bytes, node: str, classes: Dict[str, type] | None = None) -> Any:
    """Unpickle one result from ``node`` admitting only result-like data."""
    try:
        return _Unpickler(data, node, shipped_classes() if classes is None else classes).load()
    except UntrustedDataError:
        raise
    except Exception as exc:
        raise UntrustedDataError(f"results from node {node} are not readable: {type(exc).__name__}: {exc}") from exc


def loader_for(node: str) -> Callable[[bytes], Any]:
    classes = shipped_classes()
    return lambda data: safe_loads(data, node, classes)
