"""The flows of netunicorn's example notebooks (basic, tasks and dispatchers, execution graphs,
local executor), written as netunicorn users write them; only the line that imports the client
(or the local executor) names unicorn_ansible instead of netunicorn."""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from netunicorn.base import CyclePipeline, ExecutionGraph, Task, TaskDispatcher
from netunicorn.base.experiment import Experiment, ExperimentStatus
from netunicorn.base.nodes import Node
from netunicorn.base.pipeline import Pipeline
from netunicorn.executor import get_local_executor as netunicorn_local_executor
from netunicorn.library.tasks.basic import SleepTask
from returns.pipeline import is_successful
from returns.result import Result

# the one line a netunicorn user changes:
from unicorn_ansible import RemoteClient, RemoteClientException, get_local_executor

# A notebook's classes live in __main__ and travel by value; this test module's must be told to.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # netunicorn's executor writes its log into the current folder
    return tmp_path


def _wait(client: RemoteClient, name: str, until: ExperimentStatus) -> object:
    for _ in range(600):
        info = client.get_experiment_status(name)
        if info.status == until:
            return info
        time.sleep(0.5)
    raise AssertionError(f"{name} never reached {until}")


def test_basic_example(home: Path) -> None:
    pipeline = Pipeline().then([SleepTask(2), SleepTask(1)]).then(SleepTask(1))
    with pytest.warns(UserWarning, match="netunicorn server"):
        client = RemoteClient(endpoint="http://localhost:26611", login="test", password="test")
    assert client.healthcheck()
    working_nodes = client.get_nodes().take(1)
    experiment = Experiment().map(pipeline, working_nodes)
    assert [type(d.environment_definition).__name__ for d in experiment] == ["DockerImage"]

    experiment_name = "experiment_cool_name"
    with pytest.raises(RemoteClientException):  # "just in case you already have this experiment"
        client.delete_experiment(experiment_name)
    client.prepare_experiment(experiment, experiment_name)
    info = _wait(client, experiment_name, ExperimentStatus.READY)
    assert [(str(d.node), d.prepared, d.error) for d in info.experiment] == [("localhost", True, None)]
    # netunicorn's default DockerImage() here: no public registry has python:<X.Y>-slim for a container
    [notice] = info.experiment[0].notices
    assert "runs netunicorn's default DockerImage environment as ShellExecution" in notice, notice

    client.start_execution(experiment_name)
    info = _wait(client, experiment_name, ExperimentStatus.FINISHED)
    for report in info.execution_result:
        assert report.node.name == "localhost" and report.error is None
        result, log = report.result
        assert isinstance(result, Result) and is_successful(result)
        assert sorted(r.unwrap() for results in result.unwrap().values() for r in results) == [1, 1, 2]
    assert experiment_name in client.get_experiments()
    assert client.get_experiments()[experiment_name].status == ExperimentStatus.FINISHED


class RemoveFileLinuxImplementation(Task):
    def __init__(self, filename: str):
        self.filename = filename
        super().__init__()

    def run(self):
        os.remove(self.filename)
        return f"removed {self.filename}"


class RemoveFileWindowsImplementation(Task):
    def __init__(self, filename: str):
        self.filename = filename
        super().__init__()

    def run(self):
        raise RuntimeError("not on Windows")


class RemoveFile(TaskDispatcher):
    def __init__(self, filename: str):
        self.filename = filename
        super().__init__()

    def dispatch(self, node: Node) -> Task:
        if node.properties.get("os_family", "linux").lower() == "linux":
            return RemoveFileLinuxImplementation(self.filename)
        return RemoveFileWindowsImplementation(self.filename)


class WriteToTmp(Task):
    def run(self):
        return "written"


def test_tasks_and_dispatchers(home: Path) -> None:
    target = home / "somefile"
    target.write_text("x")
    client = RemoteClient()
    node = client.get_nodes().take(1)[0]
    pipeline = (Pipeline().then(WriteToTmp().add_requirement(f"mkdir {home / 'mydata'}"))
                .then(WriteToTmp()).then(RemoveFile(str(target))))
    experiment = Experiment().append(node, pipeline)
    assert experiment.deployment_map[0].environment_definition.commands == [f"mkdir {home / 'mydata'}"]
    dispatched = cloudpickle.loads(experiment.deployment_map[0].execution_graph)
    assert any(isinstance(t, RemoveFileLinuxImplementation) for t in dispatched.graph.nodes)

    # netunicorn's default DockerImage() with a requirement, and no image to be had on this machine:
    # the requirement, written for a container, does not run here unasked
    client.prepare_experiment(experiment, "refused")
    [refused] = _wait(client, "refused", ExperimentStatus.READY).experiment
    assert not refused.prepared and not (home / "mydata").exists()
    assert "unicorn_container_base_image" in str(refused.error) and "unicorn_container_fallback=shell" in str(refused.error)
    # asked for: this machine as an inventory that runs such requirements on the host
    inventory = home / "here.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable} "
                         f"unicorn_container_fallback=shell unicorn_remote_root={home / 'hosts-root'}\n")
    client = RemoteClient(inventory=str(inventory))
    experiment = Experiment().append(client.get_nodes().take(1)[0], pipeline)
    client.prepare_experiment(experiment, "dispatch")
    _wait(client, "dispatch", ExperimentStatus.READY)
    client.start_execution("dispatch")
    info = _wait(client, "dispatch", ExperimentStatus.FINISHED)
    result, _ = info.execution_result[0].result
    assert is_successful(result) and not target.exists() and (home / "mydata").is_dir()
    assert f"removed {target}" in [r.unwrap() for results in result.unwrap().values() for r in results]


class DummyTask(Task):
    def run(self):
        pass


def _counts(result: Result) -> dict:
    data = result.unwrap() if is_successful(result) else result.failure()
    return {name: len(results) for name, results in data.items()}


def test_execution_graphs_run_as_netunicorns_executor_runs_them(home: Path) -> None:
    task1, task2, task3, task4 = (DummyTask(name=f"task{i}") for i in range(1, 5))
    eg = ExecutionGraph()
    eg.graph.add_edge("root", task1)
    eg.graph.add_edge(task1, task2)
    eg.graph.add_edge(task1, task3)
    eg.graph.add_edge(task2, "sync1")
    eg.graph.add_edge(task3, "sync1")
    eg.graph.add_edge("sync1", task4)
    eg.graph.add_edge(task4, task1)
    with pytest.raises(ValueError):
        ExecutionGraph.is_execution_graph_valid(eg)
    eg.graph.edges[task4, task1]["type"] = "weak"
    eg.graph.edges[task4, task1]["counter"] = 3
    task5, task6, task7 = (DummyTask(name=f"task{i}") for i in range(5, 8))
    eg.graph.add_edge(task4, task5, traverse_on="failure")
    eg.graph.add_edge(task4, task6, traverse_on="success")
    eg.graph.add_edge(task4, task7, traverse_on="any")
    assert ExecutionGraph.is_execution_graph_valid(eg)

    theirs = netunicorn_local_executor(copy.deepcopy(eg))
    theirs()
    client = RemoteClient()
    client.prepare_experiment(Experiment().map(eg, client.get_nodes().take(1)), "graph")
    _wait(client, "graph", ExperimentStatus.READY)
    client.start_execution("graph")
    result, _ = _wait(client, "graph", ExperimentStatus.FINISHED).execution_result[0].result
    ours = _counts(result)
    assert ours == {"task1": 4, "task2": 4, "task3": 4, "task4": 4, "task6": 4, "task7": 4}
    # netunicorn's executor, depending on timing, runs the weak edge's source (and what follows
    # it) more often than its counter allows (README: differences): once more usually, twice
    # under load (seen 5/8 exact, 2/8 once more, 1/8 twice more with both cores busy);
    # otherwise the same tasks, never fewer runs
    theirs_counts = _counts(theirs.execution_graph_results)
    assert theirs_counts.keys() == ours.keys()
    assert all(theirs_counts[name] >= ours[name] for name in ours), theirs_counts
    assert {name for name in ours if theirs_counts[name] > ours[name]} <= {"task4", "task6", "task7"}, theirs_counts


def test_cycle_pipeline_runs_its_cycles(home: Path) -> None:
    task1, task2, task3, task4 = (DummyTask(name=f"task{i}") for i in range(1, 5))
    executor = get_local_executor(CyclePipeline(cycles=4).then(task1).then([task2, task3]).then(task4))
    executor()
    # netunicorn's executor runs the last stage a fifth time (README: differences)
    assert _counts(executor.execution_graph_results) == {"task1": 4, "task2": 4, "task3": 4, "task4": 4}


class DummyRepeaterTask(Task):
    def __init__(self, lookup_for: str):
        self.lookup_for = lookup_for
        super().__init__()

    def run(self):
        previous_results = self.previous_steps[self.lookup_for]
        return f"I've heard of {previous_results}!"


def test_local_executor(home: Path) -> None:
    pipeline = Pipeline().then(DummyTask(name="dummy1")).then(DummyRepeaterTask(lookup_for="dummy1"))
    executor = get_local_executor(pipeline)
    executor()
    theirs = netunicorn_local_executor(copy.deepcopy(pipeline))
    theirs()
    assert type(executor.execution_graph_results) is type(theirs.execution_graph_results)
    assert dict(executor.execution_graph_results.unwrap()) == dict(theirs.execution_graph_results.unwrap())


def test_cancel_executors_stops_only_those(home: Path) -> None:
    inventory = home / "inventory.ini"
    inventory.write_text("\n".join(["[lab]", "h1", "h2", "", "[lab:vars]", "ansible_connection=local",
                                    f"ansible_python_interpreter={sys.executable}",
                                    f"unicorn_remote_root={home / 'hosts-root'}", "unicorn_architecture=linux/amd64"]))
    client = RemoteClient(inventory=str(inventory))
    h1, h2 = client.get_nodes().take(2)
    experiment = (Experiment().append(h1, Pipeline().then(SleepTask(60, name="long")))
                  .append(h2, Pipeline().then(SleepTask(3, name="short"))))
    client.prepare_experiment(experiment, "partial")
    _wait(client, "partial", ExperimentStatus.READY)
    client.start_execution("partial")
    _wait(client, "partial", ExperimentStatus.RUNNING)
    time.sleep(2)
    with pytest.raises(RemoteClientException, match="no executor h9"):
        client.cancel_executors("partial", ["h9"])
    started = time.monotonic()
    client.cancel_executors("partial", [d.node.name for d in experiment if d.node.name == "h1"])
    info = _wait(client, "partial", ExperimentStatus.FINISHED)
    assert time.monotonic() - started < 50
    outcome = {r.node.name: r for r in info.execution_result}
    assert outcome["h2"].status == "ok" and outcome["h1"].status != "ok"
