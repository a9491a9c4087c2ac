"""The wire's records (node/wire.py): every record round-trips, and from_untrusted refuses what a
writer never writes (mutated types, truncated, deep, huge) with one bounded WireError naming the
field; unknown fields are kept by rule; one parser answers the same everywhere."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import typing
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unicorn_ansible.node import wire
from unicorn_ansible.node.wire import (
    MAX_DEPTH,
    MAX_EXTRA,
    RECORDS,
    ArtifactOffer,
    ExecutorAnswer,
    NodeStatusRecord,
    Part,
    ReportedTask,
    RunOptions,
    RunRecord,
    TaskRecord,
    WireError,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(max_size=30)
FOLDER = st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s and "\0" not in s and s not in (".", ".."))
NUMBER = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
LEAF = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), NUMBER, TEXT)
UNKNOWN = st.dictionaries(st.text(min_size=1, max_size=10).map(lambda s: f"x-{s}"),
                          st.one_of(LEAF, st.lists(LEAF, max_size=3)), max_size=3)

#: fields whose values have a form of their own (everything else is built from its type)
SPECIAL: dict[tuple[type, str], st.SearchStrategy[object]] = {
    (RunRecord, "hosts"): st.lists(FOLDER, max_size=3).map(tuple),
    (RunRecord, "executors"): st.dictionaries(FOLDER, TEXT, max_size=3),
    (ReportedTask, "seq"): st.integers(0, 1000),
    (wire.FlagsEndpoint, "port"): st.integers(1, 65535),
    (wire.FlagsEndpoint, "local_port"): st.none() | st.integers(1, 65535),
}


def _offers() -> st.SearchStrategy[ArtifactOffer]:
    path = st.lists(FOLDER, min_size=1, max_size=3).map("/".join)
    left = st.builds(ArtifactOffer, path=path, task=st.none() | TEXT, source=st.none() | TEXT, left=TEXT,
                     extra=UNKNOWN)
    fetchable = st.builds(ArtifactOffer, path=path, task=st.none() | TEXT, source=st.none() | TEXT,
                          size=st.integers(0, 10**9), sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
                          transfer=st.integers(0, 99).map(lambda n: f"outgoing/{n}"), extra=UNKNOWN)
    return left | fetchable


def _of_type(kind: object) -> st.SearchStrategy[object]:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is str:
        return TEXT
    if kind is bool:
        return st.booleans()
    if kind is int:
        return st.integers(0, 1000)
    if kind is float:
        return NUMBER
    if isinstance(kind, type) and issubclass(kind, Part):
        return records(kind)
    if origin in (typing.Union, __import__("types").UnionType):
        return st.one_of(*[_of_type(arg) for arg in args])
    if kind is type(None):
        return st.none()
    if origin is tuple:
        return st.lists(_of_type(args[0]), max_size=3).map(tuple)
    if origin in (Mapping, dict, __import__("collections").abc.Mapping):
        return st.dictionaries(st.text(min_size=1, max_size=10), _of_type(args[1]), max_size=3)
    raise AssertionError(f"no strategy for {kind!r}")


def records(cls: type[Part]) -> st.SearchStrategy[Part]:
    """Any record of ``cls`` its writer could write (within bounds), with unknown fields."""
    if cls is ArtifactOffer:
        return _offers()
    hints = typing.get_type_hints(cls, vars(wire))
    fields = {f.name: SPECIAL[(cls, f.name)] if (cls, f.name) in SPECIAL else _of_type(hints[f.name])
              for f in dataclasses.fields(cls) if f.name not in ("extra", "version")}
    return st.builds(cls, **fields, extra=UNKNOWN)


def _through_json(record: Part) -> object:
    return json.loads(json.dumps(record.to_json()))


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_every_record_round_trips(cls: type[wire.Record]) -> None:
    @FAST
    @given(records(cls))
    def round_trip(record: Part) -> None:
        assert cls.from_untrusted(_through_json(record), "source") == record
        assert cls.from_untrusted(_through_json(record), "source", lenient=True) == record

    round_trip()


def _mutated(raw: dict, key: str) -> dict:
    """``raw`` with ``key`` of a type its writer never gives it (a text where something else was, else a list)."""
    return dict(raw, **{key: [1] if isinstance(raw[key], str) else "x"})


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_mutated_field_is_refused_naming_it(cls: type[wire.Record]) -> None:
    @FAST
    @given(records(cls), st.data())
    def mutate(record: Part, data: st.DataObject) -> None:
        raw = _through_json(record)
        assert isinstance(raw, dict)
        known = sorted(key for key in raw if key in cls.known())
        key = data.draw(st.sampled_from(known))
        with pytest.raises(WireError) as refused:
            cls.from_untrusted(_mutated(raw, key), "nodes/h1/some.json")
        message = str(refused.value)
        assert message.startswith("nodes/h1/some.json") and key in message and len(message) < 600

    mutate()


@FAST
@given(records(TaskRecord), st.data())
def test_a_truncated_record_is_refused(record: Part, data: st.DataObject) -> None:
    text = json.dumps(record.to_json())
    cut = data.draw(st.integers(1, len(text) - 1))
    with pytest.raises(WireError, match="^journal is not JSON"):
        wire.parse_object(text[:cut], "journal")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 200_000])
def test_deep_input_is_one_bounded_answer_wherever_it_is_parsed(depth: int, tmp_path: Path) -> None:
    from unicorn_ansible.ansible.node_action import answer_of
    from unicorn_ansible.ansible.unicorn_collector import _answer, _deploy_answer
    from unicorn_ansible.engine.rundir import read_json

    line = '{"status": "finished", "x": ' + "[" * depth + "]" * depth + "}"
    began = time.monotonic()
    with pytest.raises(WireError, match=f"nested deeper than {MAX_DEPTH} levels"):
        wire.last_object_line("sudo: noise\r\n" + line, "the executor's answer")
    with pytest.raises(WireError, match=f"nested deeper than {MAX_DEPTH} levels"):
        _answer(line, "h1: the executor's answer")  # the collector's
    assert answer_of(line) is None and _deploy_answer(line, "h1") is None  # the role's actions'
    (tmp_path / "state.json").write_text(line)
    assert read_json(tmp_path / "state.json") is None  # the run folder's reader
    with pytest.raises(WireError, match="nested deeper"):
        wire.ExecutorState.read(tmp_path / "state.json", "nodes/h1/state.json")
    assert time.monotonic() - began < 5


def test_depth_within_the_bound_is_read_as_json() -> None:
    assert wire.parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH, "x") is not None
    text = "[{" * 40 + '\\"'
    assert wire.parse_json(json.dumps([text]), "x") == [text]  # brackets in texts are no depth


@pytest.mark.parametrize("raw", [
    {"seq": 0, "name": "n" * (wire.TASK_NAME_CHARS + 1), "stage": 0, "index": 0, "stage_size": 1, "payload_len": 0},
    {"seq": 10**30, "name": "n", "stage": 0, "index": 0, "stage_size": 1, "payload_len": 0},
    {"seq": 0, "name": "n", "stage": 0, "index": 0, "stage_size": 1, "payload_len": 0, "start": 1e300},
    {"seq": 0, "name": "n", "stage": 0, "index": 0, "stage_size": 1, "payload_len": 0, "preview": ["p"] * 10**6},
])
def test_huge_values_are_refused_with_a_short_message(raw: dict) -> None:
    with pytest.raises(WireError) as refused:
        TaskRecord.from_untrusted(raw, "nodes/h1/journal, record 0")
    assert len(str(refused.value)) < 300


def test_huge_lists_and_files_are_refused() -> None:
    with pytest.raises(WireError, match="not_run"):
        wire.ExecutorState.from_untrusted({"status": "finished", "not_run": ["t"] * (wire.MAX_ITEMS + 1)}, "s")
    with pytest.raises(WireError, match="longer than 100 bytes"):
        wire.parse_json(" " * 101, "state.json", limit=100)
    with pytest.raises(WireError, match="not a number JSON has"):
        wire.parse_json('{"start": NaN}', "journal")


def test_a_field_a_newer_host_adds_is_kept_in_the_record_and_in_results_json(tmp_path: Path) -> None:
    """The issue's case: a node adds ``attempt: 7`` to the task record; results --json keeps it."""
    import io

    from returns.result import Success

    from unicorn_ansible.engine.rundir import RunDir, write_json
    from unicorn_ansible.node.journal import append_record
    from unicorn_ansible.node.outcome import dumps_result
    from unicorn_ansible.results.load import load_results

    run = RunDir(tmp_path / "r")
    run.create_record({"name": "r", "hosts": ["h1"], "status": "finished"})
    folder = run.node_dir("h1")
    folder.mkdir(parents=True)
    data = dumps_result(Success(1))
    header = TaskRecord(seq=0, name="t", stage=0, index=0, stage_size=1, payload_len=len(data), type="Success",
                        kind="ok", extra={"attempt": 7})
    with open(folder / "journal", "wb") as journal:
        append_record(journal, header, io.BytesIO(data), len(data))
    write_json(folder / "state.json", {"status": "finished", "done": 1, "total": 1, "failed": 0, "retries": 2})
    [node] = load_results(run.path).to_dict()["nodes"]  # type: ignore[misc]
    assert node["timings"][0]["extra"] == {"attempt": 7} and node["extra"] == {"state.json": {"retries": 2}}
    assert node["status"] == "ok" and node["tasks"] == {"t": [{"type": "Success", "value": 1}]}


def test_more_unknown_fields_than_a_record_keeps_are_refused_by_name() -> None:
    raw = {"status": "finished", **{f"new{n}": n for n in range(MAX_EXTRA + 1)}}
    with pytest.raises(WireError, match=f"unknown field 'new{MAX_EXTRA}'"):
        wire.ExecutorState.from_untrusted(raw, "nodes/h1/state.json")
    deep = {"status": "finished", "new": [[[[[[[[[[1]]]]]]]]]]}
    with pytest.raises(WireError, match="'new' is nested deeper than"):
        wire.ExecutorState.from_untrusted(deep, "nodes/h1/state.json")
    assert wire.ExecutorState.from_untrusted(deep, "s", lenient=True).extra == {}  # lenient: left out


def test_a_record_of_a_newer_version_is_refused_and_an_old_one_is_read() -> None:
    with pytest.raises(WireError, match="version 2, written by a newer unicorn-ansible"):
        RunRecord.from_untrusted({"version": 2, "name": "r"}, "run.json")
    assert RunRecord.from_untrusted({"name": "r"}, "run.json").version == 1  # no version: the releases before


def test_run_folder_records_of_the_previous_version_are_read_leniently() -> None:
    """run.json and status.json as the previous release wrote them (no versions; a status kept the host's
    progress unchecked): a field of the wrong type reads as absent, the rest is kept."""
    record = RunRecord.from_untrusted({"name": "old", "hosts": ["h1", "h2"], "status": "finished",
                                       "options": {"forks": "five", "artifact_cap": 100}}, "run.json", lenient=True)
    assert record.deployments() == {"h1": "h1", "h2": "h2"} and record.options == RunOptions(artifact_cap=100)
    status = NodeStatusRecord.from_untrusted(
        {"phase": "executed", "progress": {"done": "lots", "total": 3}, "finished": [1, {"seq": [1], "name": {}}]},
        "nodes/h1/status.json", lenient=True)
    assert status.progress is not None and (status.progress.done, status.progress.total) == (None, 3)
    assert [(t.seq, t.name) for t in status.finished] == [(None, "?")]
    escaping = RunRecord.from_untrusted({"name": "r", "executors": {"../../outside": "h1"}}, "run.json",
                                        lenient=True)
    assert escaping.executors == {}  # an executor id that could leave the run folder is never one


def test_run_options_have_compile_options_fields() -> None:
    from unicorn_ansible.compiler.settings import CompileOptions

    assert {f.name for f in dataclasses.fields(CompileOptions)} == set(RunOptions.known())


def test_the_bundles_python_check_answers_as_the_deployment_does() -> None:
    from unicorn_ansible.compiler.bundle import _MAIN

    check = _MAIN.format(expected="2.7", package="nothing_to_import").split("\nfrom ")[0]
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    answer = wire.DeployAnswer.from_untrusted(wire.last_object_line(done.stdout, "answer"), "answer")
    assert done.returncode == 1 and not answer.ok and "but the controller has Python 2.7" in (answer.error or "")


def test_an_executor_answer_carries_its_state_flat() -> None:
    state = wire.ExecutorState(status="running", done=2, extra={"new-field": 1})
    answer = ExecutorAnswer.of(state, outbox="/w/outbox.tar", outbox_data="AAAA",
                               new=(ReportedTask(seq=1, name="t"),))
    raw = answer.to_json()
    assert raw["status"] == "running" and raw["done"] == 2 and raw["new-field"] == 1 and raw["outbox"] == "/w/outbox.tar"
    progress = answer.progress()
    assert progress.outbox_data is None and progress.new == () and progress.done == 2


def test_an_artifacts_index_of_the_previous_version_is_its_mapping() -> None:
    key = json.dumps(["t", "a.txt"])
    old = {key: {"task": "t", "path": "a.txt", "size": 3, "file": "nodes/h1/artifacts/t/a.txt", "left": None}}
    index = wire.ArtifactsIndex.from_untrusted(old, "nodes/h1/artifacts-index.json", lenient=True)
    assert index.entries[key].file == "nodes/h1/artifacts/t/a.txt" and index.version == 1
    assert wire.ArtifactsIndex.from_untrusted(index.to_json(), "again") == index  # written in the new form
