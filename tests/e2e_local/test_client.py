"""netunicorn's notebook flow with the Python client, on the local machine."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from unicorn_ansible import (
    AtomicIncrementFlagTask,
    Client,
    Experiment,
    ExperimentStatus,
    Failure,
    FlagValues,
    Pipeline,
    SetFlagTask,
    Success,
    Task,
    WaitForExactFlagResultTask,
    is_successful,
)
from unicorn_ansible.engine.lifecycle import run_path
from unicorn_ansible.engine.rundir import RunDir, RunStatus


class Measure(Task):
    def __init__(self, value: int) -> None:
        self.value = value
        super().__init__(name="measure")

    def run(self):
        return self.value * 2


class Leaves(Task):
    """Leaves a file in its artifacts folder."""

    def run(self):
        Path(self.artifacts_dir, "trace.txt").write_text("from the node")
        return "left"


class Explode(Task):
    def run(self):
        raise ValueError("exploded")


class SleepAfterSaying(Task):
    """Writes a file when it starts, then sleeps longer than any test waits."""

    def __init__(self, started: Path) -> None:
        self.started = str(started)
        super().__init__(name="sleep")

    def run(self):
        Path(self.started).write_text("started")
        time.sleep(300)
        return "woke up"


def _poll(client: Client, name: str, wanted: ExperimentStatus, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get_experiment_status(name)
        if info.status == wanted:
            return info
        time.sleep(0.5)
    raise AssertionError(f"{name} did not reach {wanted} in {timeout} s: {client.get_experiment_status(name)}")


def test_basic_notebook_flow(isolated_home: Path) -> None:
    client = Client()
    assert client.healthcheck()
    nodes = client.get_nodes()
    working_nodes = nodes.filter(lambda node: node.name == "localhost").take(1)
    assert [node.name for node in working_nodes] == ["localhost"]

    pipeline = Pipeline().then(Measure(21)).then(Leaves(name="leaves")).then(Explode(name="explode"))
    experiment = Experiment().map(pipeline, working_nodes)
    name = "notebook-flow"
    client.prepare_experiment(experiment, name)
    assert client.get_experiment_status(name).status in (ExperimentStatus.PREPARING, ExperimentStatus.READY)

    info = _poll(client, name, ExperimentStatus.READY)
    assert all(deployment.prepared for deployment in info.experiment)
    assert all(deployment.error is None for deployment in info.experiment)

    client.start_execution(name)
    info = _poll(client, name, ExperimentStatus.FINISHED)
    [result] = info.execution_result
    assert result.node.name == "localhost"
    outcome, logs = result.result
    assert not is_successful(outcome)  # a task failed
    tasks = outcome.failure()
    assert tasks["measure"] == [Success(42)]
    assert tasks["explode"] == [Failure("exploded")]
    assert any("ValueError: exploded" in line for line in logs)  # the traceback is in the task's log
    [artifact] = result.artifacts  # the files the tasks left, as netunicorn's result lacks them
    assert (artifact.task, artifact.path, artifact.size, artifact.left) == ("leaves", "trace.txt", 13, None)
    assert artifact.sha256 == hashlib.sha256(b"from the node").hexdigest()
    assert (run_path(name).path / artifact.file).read_text() == "from the node"
    assert name in client.get_experiments()

    client.delete_experiment(name)
    assert name not in client.get_experiments()


def test_blocking_run_returns_results(isolated_home: Path) -> None:
    client = Client()
    results = client.run(Experiment().map(Pipeline().then(Measure(5)), client.get_nodes().take(1)), "blocking")
    assert results.success
    assert results["localhost"].tasks["measure"] == [Success(10)]
    assert results["localhost"].results == [Success(10)]


def test_starting_an_unprepared_experiment_is_refused(isolated_home: Path) -> None:
    client = Client()
    with pytest.raises(Exception, match="no experiment named"):
        client.start_execution("never-prepared")


def test_flags_set_from_the_client_reach_a_running_task(isolated_home: Path) -> None:
    """A task waits for a flag the notebook sets while the execution runs; the notebook reads
    back the flag the task set."""
    client = Client()
    pipeline = Pipeline([
        SetFlagTask("task-up", FlagValues(text_value="waiting"), name="announce"),
        WaitForExactFlagResultTask("go", FlagValues(text_value="now", int_value=3), timeout=120, name="wait-for-go"),
        AtomicIncrementFlagTask("done", name="count"),
    ])
    name = "flags-from-client"
    client.prepare_experiment(Experiment().map(pipeline, client.get_nodes().take(1)), name)
    _poll(client, name, ExperimentStatus.READY)
    client.set_flag_values(name, "done", FlagValues(text_value="before", int_value=10))  # before the start: kept
    client.start_execution(name)
    deadline = time.monotonic() + 120
    while "task-up" not in client.get_flags(name):  # get_flag_values raises until it is set, as netunicorn's
        assert time.monotonic() < deadline, "the task never set its flag"
        time.sleep(0.2)
    assert client.get_flag_values(name, "task-up") == FlagValues(text_value="waiting", int_value=0)
    client.set_flag_values(name, "go", FlagValues(text_value="now", int_value=3))
    info = _poll(client, name, ExperimentStatus.FINISHED)
    [result] = info.execution_result
    outcome, _ = result.result
    assert is_successful(outcome), outcome
    assert client.get_flags(name)["done"] == FlagValues(text_value="before", int_value=11)


def _until(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.2)


def test_a_run_cancelled_through_the_client_stays_cancelled(isolated_home: Path, tmp_path: Path) -> None:
    """As in a notebook, the client's process stays alive: its background execution play ends
    after the cancel, and the run is still recorded as cancelled, not finished."""
    client = Client()
    name = "cancelled-in-a-notebook"
    started = tmp_path / "task-started"
    client.prepare_experiment(Experiment().map(Pipeline().then(SleepAfterSaying(started)), client.get_nodes().take(1)),
                              name)
    _poll(client, name, ExperimentStatus.READY)
    client.start_execution(name)
    _until(started.exists, "the task's start")
    client.cancel_experiment(name)
    run = RunDir(isolated_home / "runs" / name)
    _until(lambda: "ansible_rc" in run.record(), "the end of the background execution play")
    assert run.record()["status"] == RunStatus.CANCELLED.value
    info = client.get_experiment_status(name)
    assert info.status == ExperimentStatus.FINISHED  # netunicorn's statuses end in FINISHED
    [result] = info.execution_result
    assert result.status == "cancelled"
