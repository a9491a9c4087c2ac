"""The run folder's record: changes under its lock are never lost; a cancelled run stays cancelled."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from unicorn_ansible.engine.lifecycle import settle
from unicorn_ansible.engine.rundir import RunDir, RunStatus, read_json, write_atomic
from unicorn_ansible.errors import RunError

WRITERS, UPDATES = 4, 50


def _count(record: dict) -> dict:
    return {"count": record.get("count", 0) + 1}


def _add_many(path: str) -> None:
    run = RunDir(Path(path))
    for _ in range(UPDATES):
        run.update(_count)


def test_concurrent_updates_from_threads_and_processes_lose_nothing(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.create_record({"name": "counted"})
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_add_many, args=(str(tmp_path),)) for _ in range(WRITERS)]
    threads = [threading.Thread(target=_add_many, args=(str(tmp_path),)) for _ in range(WRITERS)]
    for worker in processes + threads:
        worker.start()
    for worker in processes + threads:
        worker.join()
    assert all(process.exitcode == 0 for process in processes)
    assert run.record() == {"name": "counted", "count": 2 * WRITERS * UPDATES}


def test_a_step_ending_after_a_cancel_leaves_the_run_cancelled(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.create_record({"status": RunStatus.RUNNING.value})
    run.update(cancel_requested=1.0)  # the cancel is under way: its play has not ended yet
    assert settle(run, RunStatus.FINISHED, ansible_rc=0)["status"] == RunStatus.CANCELLED.value
    run.update(status=RunStatus.CANCELLED.value)
    assert settle(run, RunStatus.READY)["status"] == RunStatus.CANCELLED.value
    assert run.record()["ansible_rc"] == 0  # what the step reports is kept


def test_a_missing_or_broken_record_is_a_run_error(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert not run.exists()
    with pytest.raises(RunError, match="no readable run.json"):
        run.record()
    write_atomic(run.record_file, "[1, 2]")
    assert read_json(run.record_file) is None  # JSON, but not an object
    with pytest.raises(RunError):
        run.update(status="finished")
    assert not list(tmp_path.glob(".*.tmp*"))  # no temporary file left behind


def test_a_run_cancelled_from_elsewhere_waits_for_that_cancel_only_while_it_lives(tmp_path: Path) -> None:
    import time

    from unicorn_ansible.engine.controller import this_controller
    from unicorn_ansible.engine.lifecycle import _wait_for_cancel

    run = RunDir(tmp_path)
    run.create_record({"status": RunStatus.RUNNING.value})
    started = time.monotonic()
    _wait_for_cancel(run)  # no cancel asked for: at once
    run.update(cancel_requested=1.0, canceller={"pid": 2**22 + 1, "start_time": 1})
    _wait_for_cancel(run)  # its canceller is gone: at once
    assert time.monotonic() - started < 1
    run.update(canceller=this_controller())  # a cancel under way (its play fetches what finished)
    threading.Timer(0.5, lambda: run.update(cancelled=2.0)).start()
    _wait_for_cancel(run)
    assert 0.4 < time.monotonic() - started < 5 and "cancelled" in run.record()


def test_finished_tasks_are_read_line_by_line_as_untrusted_and_an_older_status_still_counts(tmp_path: Path) -> None:
    # the collector appends each reported task once (status.json is no longer rewritten with all of
    # them at every poll); a line that is not a task, or not JSON, or cut short, is left out
    import json

    run = RunDir(tmp_path)
    run.node_dir("h1").mkdir(parents=True)
    run.node_status_file("h1").write_text(json.dumps({"finished": [{"seq": 0, "name": "old"}]}))
    run.node_finished_file("h1").write_text("\n".join([
        json.dumps({"seq": 1, "name": "first", "type": "Success"}),
        "[" * 100_000,
        json.dumps({"seq": [1], "name": {"a": 1}}),
        "not json",
        json.dumps({"seq": 2, "name": "second"}),
        '{"seq": 3, "na',
    ]))
    assert [(t.seq, t.name) for t in run.node_finished("h1")] == [(0, "old"), (1, "first"), (2, "second")]
    assert run.node_finished("nobody") == ()


def test_no_name_makes_a_node_s_path_outside_the_run_folder(tmp_path: Path) -> None:
    """Issue 28 item 4: an executor id or a host's name (a crafted run.json, a crafted inventory the
    callback is told of) that is not one folder's name is a RunError naming it, never a path."""
    from unicorn_ansible.engine.rundir import executors

    run = RunDir(tmp_path / "run")
    for bad in ("../../outside", "/etc", "a\0b", "..", "", "x" * 256):
        for path_of in (run.node_dir, run.shipped_dir, run.node_status_file, run.node_logs_dir):
            with pytest.raises(RunError, match="cannot name a folder"):
                path_of(bad)
        with pytest.raises(RunError, match="run.json's executors entry"):
            executors({"name": "r", "executors": {bad: "h"}, "hosts": ["h"]})
        with pytest.raises(RunError, match="run.json's hosts entry"):
            executors({"name": "r", "hosts": [bad]})
    assert run.node_dir("h#2") == tmp_path / "run" / "nodes" / "h#2"
    assert executors({"name": "r", "executors": {"h": "h", "h#2": "h"}, "hosts": ["h"]}) == {"h": "h", "h#2": "h"}
