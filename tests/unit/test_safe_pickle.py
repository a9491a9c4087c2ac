"""Results from hosts are untrusted: the loader admits result-like data only."""

from __future__ import annotations

import collections
import datetime
import os
import pickle
from pathlib import Path

import cloudpickle
import pytest

from unicorn_ansible import Failure, Success, UntrustedDataError
from unicorn_ansible.results.safe_pickle import safe_loads


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
