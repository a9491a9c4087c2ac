"""Loading results that come back from hosts, which are untrusted data.

A host may be compromised, so its journal is never unpickled with the plain
``pickle`` module. The loader here admits only what a result can legitimately
contain: the ``returns`` Result classes, builtins and standard containers and
value types, exceptions, and the classes the experiment itself defined and
shipped. The executor refers to those shipped classes by the id the controller
gave each when it pickled the pipeline (``model/travel.py``) instead of sending
their code back (``node/outcome.py``); this side looks the id up in the table each
of the run's pipelines carries (:func:`shipped_classes`), never in cloudpickle's
own bookkeeping.

Every opcode that could run code is checked (pickle's own pure-Python
unpickler, with its dispatch table narrowed):

- a global is admitted by its exact module and name (no dotted names, so
  ``pathlib`` cannot lead to ``os.system``);
- a call (REDUCE, NEWOBJ) is made only to an admitted type, with arguments that
  are already built values (``bytes(2**33)`` or ``list(range(2**40))`` would
  allocate what the payload does not hold: refused);
- an instance of a shipped class is built without running any of its code (a class with a
  ``__del__``, which would run with the host's data once the value is dropped, is refused): its
  nearest builtin base makes it (never its ``__init__``, ``__new__`` or
  ``__reduce__``), its state is put in its ``__dict__`` and slots directly (never
  its ``__setstate__``), its members are added with the builtin container's own
  methods; an enum member is looked up among the enum's members;
- the loaded value nests at most :data:`MAX_DEPTH` containers deep (``--json``
  and the report print it).

Anything else is refused with an UntrustedDataError naming the node.
"""

from __future__ import annotations

import builtins
import collections
import enum
import io
import pickle
import types
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import TypeGuard, TypeVar, cast

import cloudpickle

from ..errors import UntrustedDataError
from ..model import travel
from ..node.protocol import SHIPPED_CLASS, SHIPPED_CLASSES

#: how deep containers may nest in a loaded result
MAX_DEPTH = 200
T = TypeVar("T")

_BUILTIN_TYPES = {
    "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list", "object", "range",
    "set", "slice", "str", "tuple", "NoneType", "Ellipsis", "NotImplemented",
}
_ALLOWED: dict[str, set[str]] = {
    "builtins": _BUILTIN_TYPES,
    "collections": {"OrderedDict", "deque", "defaultdict", "Counter"},
    "datetime": {"date", "datetime", "time", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "fractions": {"Fraction"},
    "uuid": {"UUID", "SafeUUID"},
    "ipaddress": {"IPv4Address", "IPv6Address", "IPv4Network", "IPv6Network", "IPv4Interface", "IPv6Interface"},
    "pathlib": {"PurePosixPath", "PosixPath", "PureWindowsPath"},
    "returns.result": {"Success", "Failure", "Result"},
    "returns.maybe": {"Some", "Nothing", "_Nothing", "Maybe"},
}
#: builtin bases whose instances start empty (members are added with the builtin's own methods)
_CONTAINERS = (list, dict, set, collections.deque)
#: constructors that turn a number into that much memory
_SIZED_BY_NUMBER = (bytes, bytearray)
#: constructors that make an object per character of a text (``list("名" * 10**7)``: 28 MB of payload, 800 MB);
#: a pickle never calls them with one (their members come with APPENDS and ADDITEMS)
_SPLITTING = (list, tuple, set, frozenset, collections.deque)
#: constructors that hash what they are given
_HASHING = (set, frozenset, dict)


def _is_builtin_exception(module: str, name: str) -> bool:
    value = getattr(builtins, name, None) if module == "builtins" else None
    return isinstance(value, type) and issubclass(value, BaseException)


def shipped_classes(pickles: Iterable[Path]) -> dict[str, type]:
    """The classes a run's pipelines shipped, by id: the table each of its pipeline pickles carries
    (written by this controller, so loaded fully). A class this process pickled itself is that
    class, not a copy: a notebook's results are instances of its own classes."""
    classes: dict[str, type] = {}
    for path in pickles:
        try:
            table = getattr(cloudpickle.loads(Path(path).read_bytes()), SHIPPED_CLASSES, None)
        except Exception:  # a pipeline whose modules are gone: its classes are simply not admitted
            continue
        classes.update((key, cls) for key, cls in (table.items() if isinstance(table, dict) else ())
                       if isinstance(key, str) and isinstance(cls, type))
    own = travel.shipped_classes()
    return {key: own.get(key, cls) for key, cls in classes.items()}


def _builtin_base(cls: type) -> type:
    """The nearest builtin type ``cls`` derives from: it makes instances without running ``cls``'s code."""
    return next(base for base in cls.__mro__ if base.__module__ == "builtins")


def _is(value: object, kinds: type[T] | tuple[type[T], ...]) -> TypeGuard[T]:
    """isinstance by the value's real type (a shipped class's ``__class__`` property never runs)."""
    return issubclass(type(value), kinds)


class RefusedClassError(UntrustedDataError):
    """A result refers to something a result may not contain: ``refers_to`` names it."""

    def __init__(self, message: str, refers_to: str) -> None:
        super().__init__(message)
        self.refers_to = refers_to


class _Unpickler(pickle._Unpickler):  # pure Python: its dispatch is ours to narrow
    dispatch = dict(pickle._Unpickler.dispatch)
    # what the pure-Python unpickler keeps while it loads (typeshed does not describe them)
    stack: list[object]
    append: Callable[[object], None]
    pop_mark: Callable[[], list[object]]

    def __init__(self, data: bytes, node: str, classes: dict[str, type]) -> None:
        super().__init__(io.BytesIO(data))
        self.node = node
        self.classes = classes
        self.shipped = {id(cls) for cls in classes.values()}

    def refuse(self, what: str, refers_to: str | None = None) -> UntrustedDataError:
        message = (f"results from node {self.node} {what}; refusing to load them "
                   "(a compromised host, or a result type to return as plain data instead)")
        return RefusedClassError(message, refers_to) if refers_to else UntrustedDataError(message)

    def is_shipped(self, cls: object) -> bool:
        return _is(cls, type) and any(id(base) in self.shipped for base in cls.__mro__)

    def own_methods(self, cls: type, *names: str) -> bool:
        """Whether a shipped class in ``cls``'s ancestry defines one of ``names``."""
        return any(id(base) in self.shipped and any(n in base.__dict__ for n in names) for base in cls.__mro__)

    # -- names ---------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> object:
        if name in _ALLOWED.get(module, ()) or _is_builtin_exception(module, name):
            found: object = super().find_class(module, name)
            return found
        raise self.refuse(f"refer to {module}.{name}, which a result may not contain", f"{module}.{name}")

    def persistent_load(self, pid: object) -> type:
        if _is(pid, tuple) and len(pid) == 2 and pid[0] == SHIPPED_CLASS and pid[1] in self.classes:
            return self.classes[pid[1]]
        raise self.refuse(f"refer to a class the experiment did not ship ({pid!r:.100})",
                          f"a class the experiment did not ship ({pid!r:.100})")

    def load_never(self) -> None:
        raise self.refuse("use a pickle opcode results never contain (old-style instances or extension codes)")

    # -- calls -----------------------------------------------------------------------
    def check_arguments(self, callee: type, args: object, kwargs: object = None,
                        splits: bool = True) -> tuple[object, ...]:
        """``args``, checked to be arguments ``callee`` may be called with."""
        if not _is(args, tuple) or not (kwargs is None or _is(kwargs, dict)):
            raise self.refuse("call a constructor with malformed arguments")
        values = (*args, *(dict.values(kwargs) if kwargs is not None else ()))
        for value in values:
            if _is(value, range) or (_is(value, int) and issubclass(callee, _SIZED_BY_NUMBER)) or (
                    splits and _is(value, (str, bytes, bytearray)) and issubclass(callee, _SPLITTING)):
                raise self.refuse(f"ask for {callee.__name__}({value!r:.50}), "
                                  "a value larger than the payload that describes it")
        if issubclass(callee, _HASHING):
            self.check_keys(values)
        return args

    def construct(self, callee: object, args: object, kwargs: object = None) -> object:
        """What a REDUCE or NEWOBJ makes, without running any code of a shipped class."""
        if not _is(callee, type):
            raise self.refuse(f"call {type(callee).__name__} {callee!r:.60}, which is not a type a result may contain")
        if not _is(args, tuple):
            raise self.refuse("call a constructor with malformed arguments")
        if self.is_shipped(callee):
            return self.shipped_instance(callee, args)
        self.check_arguments(callee, args, kwargs)
        made: object = callee(*args, **(kwargs if _is(kwargs, dict) else {}))
        return made

    def shipped_instance(self, cls: type, args: tuple[object, ...]) -> object:
        if self.own_methods(cls, "__del__"):  # its finalizer would run with the host's data when dropped
            raise self.refuse(f"build an instance of {cls.__name__}, whose __del__ would run on the controller",
                              f"{cls.__module__}.{cls.__qualname__} (it defines __del__)")
        if issubclass(cls, enum.Enum):
            self.check_keys(args)
            member: object = cls._value2member_map_.get(args[0]) if len(args) == 1 and _is(args[0], Hashable) else None
            if member is None:
                raise self.refuse(f"name a member {args!r:.60} the enum {cls.__name__} does not have")
            return member
        base = _builtin_base(cls)
        if base is object or issubclass(base, _CONTAINERS):
            empty: object = base.__new__(cls)
            return empty
        self.check_arguments(base, args, splits=False)  # a tuple's members are the arguments, never split
        if base is tuple:
            return tuple.__new__(cast("type[tuple[object, ...]]", cls), args)
        value: object = base.__new__(cls, *args)
        return value

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self.construct(self.stack[-1], args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if not _is(cls, type):
            raise self.refuse("build an instance of something that is not a class")
        if self.is_shipped(cls):
            self.append(self.construct(cls, args))
            return
        self.append(cls.__new__(cls, *self.check_arguments(cls, args)))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        if kwargs:
            raise self.refuse("build an instance with keyword arguments")
        self.load_newobj()

    # -- state and members -------------------------------------------------------------
    def load_build(self) -> None:
        target = self.stack[-2]
        if _is(target, type):
            raise self.refuse("set the state of a class")
        if not self.is_shipped(type(target)):
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]  # an admitted library type's own
            return
        state = self.stack.pop()
        slots: object = None
        if _is(state, tuple) and len(state) == 2:
            state, slots = state
        parts = [state or {}, slots or {}]
        if not all(_is(part, dict) for part in parts):
            raise self.refuse(f"give an instance of {type(target).__name__} a state that is not its attributes")
        for name, value in [item for part in parts for item in dict.items(cast("dict[object, object]", part))]:
            if not _is(name, str):
                raise self.refuse(f"give an instance of {type(target).__name__} an attribute that is not a name")
            object.__setattr__(target, name, value)

    def target(self, kinds: type[T] | tuple[type[T], ...]) -> T:
        target = self.stack[-1]
        if not _is(target, kinds):
            raise self.refuse(f"add members to a {type(target).__name__}")
        return target

    def check_keys(self, keys: Iterable[object]) -> None:
        """Keys and set members whose hash would run a shipped class's code are refused."""
        pending = list(keys)
        while pending:
            key = pending.pop()
            if self.is_shipped(type(key)) and (not _is(key, enum.Enum)
                                               or self.own_methods(type(key), "__hash__", "__eq__")):
                raise self.refuse(f"use an instance of {type(key).__name__} as a key (its own hash would run)")
            if type(key) in (tuple, frozenset, list):
                pending.extend(cast("Iterable[object]", key))

    def add_items(self, items: list[object]) -> None:
        target: object = self.target((list, collections.deque, set))
        if _is(target, set):
            self.check_keys(items)
            set.update(target, items)
        elif _is(target, list):
            list.extend(target, items)
        elif _is(target, collections.deque):
            collections.deque.extend(target, items)

    def set_items(self, items: list[object]) -> None:
        target = self.target(dict)
        keys = items[0::2]
        self.check_keys(keys)
        setter = dict.__setitem__ if self.is_shipped(type(target)) else type(target).__setitem__
        for key, value in zip(keys, items[1::2]):
            setter(target, key, value)

    def load_append(self) -> None:
        self.add_items([self.stack.pop()])

    def load_appends(self) -> None:
        self.add_items(self.pop_mark())

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self.set_items([key, value])

    def load_setitems(self) -> None:
        self.set_items(self.pop_mark())

    def load_additems(self) -> None:
        items = self.pop_mark()
        self.check_keys(items)
        set.update(self.target(set), items)

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        self.check_keys(items)
        self.append(frozenset(items))

    for _opcode, _method in ((pickle.INST, load_never), (pickle.OBJ, load_never), (pickle.EXT1, load_never),
                             (pickle.EXT2, load_never), (pickle.EXT4, load_never), (pickle.DICT, load_never),
                             (pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj),
                             (pickle.NEWOBJ_EX, load_newobj_ex), (pickle.BUILD, load_build),
                             (pickle.APPEND, load_append), (pickle.APPENDS, load_appends),
                             (pickle.SETITEM, load_setitem), (pickle.SETITEMS, load_setitems),
                             (pickle.ADDITEMS, load_additems), (pickle.FROZENSET, load_frozenset)):
        dispatch[_opcode[0]] = _method  # type: ignore[assignment]  # typeshed: the C Unpickler's, not this one's
    del _opcode, _method


def _iterate(value: object) -> Iterable[object]:
    """What a container holds, read with the builtin's own methods (a subclass's never run)."""
    if _is(value, dict):
        return [*dict.keys(value), *dict.values(value)]
    kinds: tuple[type[Iterable[object]], ...] = (list, tuple, set, frozenset, collections.deque)
    for kind in kinds:
        if _is(value, kind):
            return kind.__iter__(value)
    return ()


def _attributes(value: object) -> list[object]:
    """An instance's attribute values, read through the builtin descriptors only."""
    held: list[object] = []
    for cls in type(value).__mro__:
        descriptor = cls.__dict__.get("__dict__")
        if _is(descriptor, types.GetSetDescriptorType):
            held.extend(dict.values(descriptor.__get__(value)))
            break
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if _is(slots, str) else slots:
            descriptor = cls.__dict__.get(slot)
            if _is(descriptor, types.MemberDescriptorType):
                try:
                    held.append(descriptor.__get__(value))
                except AttributeError:  # a slot never set
                    pass
    return held


_LEAVES = frozenset({str, bytes, bytearray, int, float, complex, bool, type(None), range})


def _held(value: object) -> Iterable[object]:
    kind = type(value)
    if kind is dict:
        return [*dict.keys(cast("dict[object, object]", value)), *dict.values(cast("dict[object, object]", value))]
    if kind in (list, tuple, set, frozenset):
        return cast("Iterable[object]", value)
    return [*_iterate(value), *_attributes(value)]


def check_depth(value: object, node: str, limit: int = MAX_DEPTH) -> None:
    """Refuse a value nested more than ``limit`` containers deep (walked without recursion)."""
    seen: set[int] = set()
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if id(item) in seen or _is(item, type):
            continue
        if depth > limit:
            raise UntrustedDataError(f"results from node {node} nest more than {limit} levels deep; refusing to load them")
        seen.add(id(item))
        pending.extend([(child, depth + 1) for child in _held(item) if type(child) not in _LEAVES])


def safe_loads(data: bytes, node: str, classes: dict[str, type] | None = None) -> object:
    """Unpickle one result from ``node`` admitting only result-like data (and ``classes``, by id;
    default: the classes this process shipped)."""
    try:
        value: object = _Unpickler(data, node, travel.shipped_classes() if classes is None else classes).load()
    except UntrustedDataError:
        raise
    except Exception as exc:
        raise UntrustedDataError(f"results from node {node} are not readable: {type(exc).__name__}: {exc!s:.200}") from exc
    check_depth(value, node)
    return value


class _TrustingUnpickler(pickle.Unpickler):
    """Loads anything (the user trusts the host): the experiment's shipped classes by their id."""

    def __init__(self, data: bytes, classes: dict[str, type]) -> None:
        super().__init__(io.BytesIO(data))
        self.classes = classes

    def persistent_load(self, pid: object) -> type:
        if isinstance(pid, tuple) and len(pid) == 2 and pid[0] == SHIPPED_CLASS and pid[1] in self.classes:
            return self.classes[pid[1]]
        raise pickle.UnpicklingError(f"a result refers to a class the experiment did not ship ({pid!r:.100})")


def trusted_loads(data: bytes, node: str, classes: dict[str, type] | None = None) -> object:
    """Unpickle one result from ``node`` without restrictions: for hosts the user trusts."""
    try:
        value: object = _TrustingUnpickler(data, travel.shipped_classes() if classes is None else classes).load()
        return value
    except Exception as exc:
        raise UntrustedDataError(f"results from node {node} are not readable: {type(exc).__name__}: {exc!s:.200}") from exc


def loader_for(node: str, trust: bool = False, classes: dict[str, type] | None = None) -> Callable[[bytes], object]:
    """How to load ``node``'s results: restricted, or, with ``trust``, fully; the shipped classes
    by id are ``classes`` (a run's: :func:`shipped_classes`), by default the ones this process shipped."""
    classes = travel.shipped_classes() if classes is None else classes
    loads = trusted_loads if trust else safe_loads
    return lambda data: loads(data, node, classes)
