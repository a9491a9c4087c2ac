"""Results from hosts are untrusted: the loader admits result-like data only."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import os
import pickle
import sys
import uuid
import weakref
from pathlib import Path

import cloudpickle
import pytest

from unicorn_ansible import Failure, Pipeline, Success, Task, UntrustedDataError
from unicorn_ansible.model import travel
from unicorn_ansible.model.experiment import serialize_for_node
from unicorn_ansible.node.journal import iter_records, results_by_name
from unicorn_ansible.node.protocol import JOURNAL, PIPELINE
from unicorn_ansible.node.scheduler import run_pipeline
from unicorn_ansible.results.safe_pickle import loader_for, safe_loads, shipped_classes


class _RunsACommand:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_result_that_runs_a_command_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Success(_RunsACommand(str(marker))))
    with pytest.raises(UntrustedDataError, match="node evil-host") as caught:
        safe_loads(payload, "evil-host")
    assert "system" in str(caught.value)
    assert not marker.exists()


def test_cloudpickled_code_is_refused() -> None:
    payload = cloudpickle.dumps(Success(lambda: os.system("true")))
    with pytest.raises(UntrustedDataError, match="node n1"):
        safe_loads(payload, "n1")


def test_garbage_is_a_clear_error() -> None:
    with pytest.raises(UntrustedDataError, match="not readable"):
        safe_loads(b"\x80\x05not a pickle", "n2")


@pytest.mark.parametrize(
    "value",
    [
        Success({"rtt": [1.5, 2.0], "host": "h1", "ok": True, "raw": b"\x00\x01", "none": None}),
        Failure("timed out"),
        Success((1, 2, frozenset({3}), {4}, bytearray(b"x"), complex(1, 2))),
        Success(collections.OrderedDict(a=1)),
        Success(collections.Counter("abca")),
        Success(datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)),
        Failure(ValueError("bad value")),
    ],
)
def test_result_like_data_loads(value) -> None:
    loaded = safe_loads(cloudpickle.dumps(value), "n3", classes={})
    if isinstance(value, Failure) and isinstance(value.failure(), Exception):
        assert type(loaded.failure()) is ValueError and str(loaded.failure()) == "bad value"
    else:
        assert loaded == value


def test_a_class_the_experiment_shipped_is_admitted_by_reference() -> None:
    class Measurement:  # stands for a class defined in the experiment file
        def __init__(self, rtt: float) -> None:
            self.rtt = rtt

    class ByReference(pickle.Pickler):
        def persistent_id(self, obj):
            return ("unicorn-ansible-class", "tracker-1") if obj is Measurement else None

    import io

    buffer = io.BytesIO()
    ByReference(buffer, protocol=5).dump(Success(Measurement(1.25)))
    loaded = safe_loads(buffer.getvalue(), "n4", classes={"tracker-1": Measurement})
    assert isinstance(loaded.unwrap(), Measurement) and loaded.unwrap().rtt == 1.25
    with pytest.raises(UntrustedDataError, match="did not ship"):
        safe_loads(buffer.getvalue(), "n4", classes={})


# -- a compromised host's hand-made pickles -------------------------------------------------

def _shipped_ref(tracker: str) -> bytes:
    """The pickle bytes of a reference to a shipped class (as the executor writes it)."""
    return (pickle.MARK + _unicode("unicorn-ansible-class") + _unicode(tracker) + pickle.TUPLE
            + pickle.BINPERSID)


def _unicode(text: str) -> bytes:
    data = text.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data


def _global(module: str, name: str) -> bytes:
    return _unicode(module) + _unicode(name) + pickle.STACK_GLOBAL


def _program(*parts: bytes) -> bytes:
    return pickle.PROTO + b"\x04" + b"".join(parts) + pickle.STOP


def test_a_dotted_name_does_not_reach_os_system_through_an_allowed_module(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for module, name in (("pathlib", "os.system"), ("collections", "_sys.modules"), ("builtins", "__import__")):
        payload = _program(_global(module, name), _unicode(f"touch {marker}"), pickle.TUPLE1, pickle.REDUCE)
        with pytest.raises(UntrustedDataError, match=f"refer to {module}.{name}"):
            safe_loads(payload, "evil")
    assert not marker.exists()


def test_a_function_named_through_an_allowed_module_is_never_called_by_a_type(tmp_path: Path) -> None:
    """list(map(pathlib.os.system, [command])): every callee is a type, so only the exact names stop it."""
    marker = tmp_path / "pwned"
    payload = _program(_global("builtins", "list"), _global("builtins", "map"), _global("pathlib", "os.system"),
                       pickle.EMPTY_LIST, pickle.MARK, _unicode(f"touch {marker}"), pickle.APPENDS,
                       pickle.TUPLE2, pickle.REDUCE, pickle.TUPLE1, pickle.REDUCE)
    try:
        safe_loads(payload, "evil")
    except UntrustedDataError:
        pass
    assert not marker.exists(), "a crafted result ran a command on the controller"


@pytest.mark.parametrize("callee, argument", [
    (("builtins", "bytes"), pickle.LONG1 + b"\x05\x00\x00\x00\x00\x02"),  # bytes(2**33)
    (("builtins", "bytearray"), pickle.LONG1 + b"\x05\x00\x00\x00\x00\x02"),
    (("builtins", "list"), _global("builtins", "range") + pickle.LONG1 + b"\x06\x00\x00\x00\x00\x00\x01"
     + pickle.TUPLE1 + pickle.REDUCE),  # list(range(2**40))
    (("collections", "Counter"), _global("builtins", "range") + pickle.LONG1 + b"\x05\x00\x00\x00\x00\x02"
     + pickle.TUPLE1 + pickle.REDUCE),
    (("builtins", "list"), _unicode("名" * 80)),  # an object per character: 28 MB of text made 800 MB
    (("builtins", "tuple"), pickle.SHORT_BINBYTES + bytes([200]) + b"x" * 200),
    (("collections", "deque"), _unicode("x" * 200)),
])
def test_an_allocation_larger_than_the_payload_is_refused_at_once(callee, argument) -> None:
    import time

    payload = _program(_global(*callee), argument, pickle.TUPLE1, pickle.REDUCE)
    started = time.monotonic()
    with pytest.raises(UntrustedDataError, match="larger than the payload"):
        safe_loads(payload, "evil")
    assert time.monotonic() - started < 1


def test_nesting_deeper_than_the_bound_is_refused_without_recursion() -> None:
    deep = _program(pickle.EMPTY_LIST * 100_000, pickle.APPEND * 99_999)
    with pytest.raises(UntrustedDataError, match="levels deep"):
        safe_loads(deep, "evil")
    assert safe_loads(_program(pickle.EMPTY_LIST * 100, pickle.APPEND * 99), "fine") is not None


def test_a_shipped_class_is_rebuilt_without_running_its_code(tmp_path: Path) -> None:
    written = tmp_path / "written"

    class Measurement:  # a class the experiment shipped, whose every method writes a file
        def __init__(self, *args) -> None:
            written.write_text(f"__init__{args}")

        def __new__(cls, *args):
            written.write_text("__new__")
            return super().__new__(cls)

        def __setstate__(self, state) -> None:
            written.write_text("__setstate__")

        def __hash__(self) -> int:
            written.write_text("__hash__")
            return 1

        def append(self, item) -> None:
            written.write_text("append")

    classes = {"t1": Measurement}
    reduce_call = _program(_shipped_ref("t1"), _unicode(str(tmp_path / "chosen")), pickle.TUPLE1, pickle.REDUCE)
    assert type(safe_loads(reduce_call, "evil", classes)) is Measurement
    built = _program(_shipped_ref("t1"), pickle.EMPTY_TUPLE, pickle.NEWOBJ,
                     pickle.EMPTY_DICT, _unicode("rtt"), pickle.BINFLOAT + b"?\xf4\x00\x00\x00\x00\x00\x00",
                     pickle.SETITEM, pickle.BUILD)
    assert safe_loads(built, "evil", classes).rtt == 1.25
    with pytest.raises(UntrustedDataError, match="not its attributes"):
        safe_loads(_program(_shipped_ref("t1"), pickle.EMPTY_TUPLE, pickle.NEWOBJ, _unicode("x"), pickle.BUILD),
                   "evil", classes)
    with pytest.raises(UntrustedDataError, match="as a key"):
        safe_loads(_program(pickle.EMPTY_DICT, _shipped_ref("t1"), pickle.EMPTY_TUPLE, pickle.NEWOBJ,
                            pickle.NONE, pickle.SETITEM), "evil", classes)
    with pytest.raises(UntrustedDataError, match="add members to a Measurement"):
        safe_loads(_program(_shipped_ref("t1"), pickle.EMPTY_TUPLE, pickle.NEWOBJ, pickle.NONE, pickle.APPEND),
                   "evil", classes)
    with pytest.raises(UntrustedDataError, match="state of a class"):
        safe_loads(_program(_shipped_ref("t1"), pickle.EMPTY_DICT, pickle.BUILD), "evil", classes)
    assert not written.exists()


def test_a_shipped_class_with_a_finalizer_is_refused_before_it_exists(tmp_path: Path) -> None:
    import gc

    written = tmp_path / "written"

    class TempFile:  # a class the experiment shipped: its finalizer acts on its attributes
        def __del__(self) -> None:
            written.write_text(f"removed {self.path}")

    built = _program(_shipped_ref("t1"), pickle.EMPTY_TUPLE, pickle.NEWOBJ, pickle.EMPTY_DICT, _unicode("path"),
                     _unicode("/etc/important"), pickle.SETITEM, pickle.BUILD)
    with pytest.raises(UntrustedDataError, match="__del__"):
        safe_loads(built, "evil", {"t1": TempFile})
    with pytest.raises(UntrustedDataError, match="__del__"):
        safe_loads(_program(_shipped_ref("t1"), pickle.EMPTY_TUPLE, pickle.REDUCE), "evil", {"t1": TempFile})
    gc.collect()
    assert not written.exists()


def test_shipped_enums_dataclasses_and_tuples_come_back_as_they_were() -> None:
    import dataclasses
    import enum
    import io
    import typing

    class Colour(enum.Enum):
        RED = 1

    @dataclasses.dataclass(frozen=True)
    class Sample:
        rtt: float
        colour: Colour

    class Pair(typing.NamedTuple):
        a: int
        b: str

    shipped = {Colour: "c", Sample: "s", Pair: "p"}

    class ByReference(pickle.Pickler):
        def persistent_id(self, obj):
            return ("unicorn-ansible-class", shipped[obj]) if isinstance(obj, type) and obj in shipped else None

    value = Success({"sample": Sample(1.5, Colour.RED), "pair": Pair(1, "x"), Colour.RED: [Pair(2, "y")]})
    buffer = io.BytesIO()
    ByReference(buffer, protocol=5).dump(value)
    assert safe_loads(buffer.getvalue(), "n5", {v: k for k, v in shipped.items()}) == value


def test_a_value_that_contains_itself_loads() -> None:
    looped: list = [1]
    looped.append(looped)
    loaded = safe_loads(cloudpickle.dumps(Success(looped)), "n6", classes={}).unwrap()
    assert loaded[0] == 1 and loaded[1] is loaded


# -- the classes a run shipped, whatever cloudpickle keeps of its own ---------------------------


@dataclasses.dataclass(frozen=True)
class Point:  # stands for a class of the experiment's, shipped by value to the host
    x: int
    y: int


class ReturnsPoint(Task):
    def run(self):
        return Point(1, 2)


def _renamed_trackers(monkeypatch: pytest.MonkeyPatch) -> None:
    """cloudpickle as a release that renamed its private class trackers would be: its own two
    functions that use them work on trackers of other names; the old names are gone."""
    by_id: weakref.WeakValueDictionary[str, type] = weakref.WeakValueDictionary()
    by_class: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()

    def get_or_create_tracker_id(class_def: type) -> str:
        if class_def not in by_class:
            by_class[class_def] = uuid.uuid4().hex
            by_id[by_class[class_def]] = class_def
        return by_class[class_def]

    def lookup_class_or_track(class_tracker_id: str | None, class_def: type) -> type:
        if class_tracker_id is not None:
            class_def = by_id.setdefault(class_tracker_id, class_def)
            by_class[class_def] = class_tracker_id
        return class_def

    monkeypatch.setattr(cloudpickle.cloudpickle, "_get_or_create_tracker_id", get_or_create_tracker_id)
    monkeypatch.setattr(cloudpickle.cloudpickle, "_lookup_class_or_track", lookup_class_or_track)
    for old in ("_DYNAMIC_CLASS_TRACKER_BY_ID", "_DYNAMIC_CLASS_TRACKER_BY_CLASS"):
        if hasattr(cloudpickle.cloudpickle, old):
            monkeypatch.delattr(cloudpickle.cloudpickle, old)


def test_shipped_classes_come_back_whatever_cloudpickle_keeps_of_its_own(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's pickle carries the table of the classes it ships (ids of our own): the host
    names them by it in its results and the loader admits them by it. With a cloudpickle that
    renamed its private trackers, on both sides, nothing changes."""
    _renamed_trackers(monkeypatch)
    module = sys.modules[__name__]  # the executor cannot import this test module: ship it by value
    cloudpickle.register_pickle_by_value(module)
    try:
        shipped = serialize_for_node(Pipeline().then(ReturnsPoint(name="point")))
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    (tmp_path / PIPELINE).write_bytes(shipped)
    state = run_pipeline(cloudpickle.loads(shipped), str(tmp_path))  # the host (its tasks in processes of their own)
    assert state["success"], state
    records = list(iter_records(str(tmp_path / JOURNAL)))
    [value] = results_by_name(records, loader_for("n1", classes=shipped_classes([tmp_path / PIPELINE])))["point"]
    assert type(value.unwrap()) is Point and value.unwrap() == Point(1, 2)  # this process's own class
    _renamed_trackers(monkeypatch)  # as in another process: nothing pickled or loaded here yet
    monkeypatch.setattr(travel, "_classes_by_id", weakref.WeakValueDictionary())
    [copy] = results_by_name(records, loader_for("n1", classes=shipped_classes([tmp_path / PIPELINE])))["point"]
    assert type(copy.unwrap()) is not Point and type(copy.unwrap()).__name__ == "Point" and copy.unwrap().y == 2
    with pytest.raises(UntrustedDataError, match="did not ship"):  # a class the run did not ship: refused
        results_by_name(records, loader_for("n1", classes={}))


def test_nothing_reads_cloudpickles_private_trackers() -> None:
    import unicorn_ansible

    sources = Path(unicorn_ansible.__file__).parent.rglob("*.py")
    assert not [path for path in sources if "_DYNAMIC_CLASS_TRACKER" in path.read_text()]
