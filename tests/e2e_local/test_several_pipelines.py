"""Several pipelines on one node, as netunicorn runs ``append(node, p1).append(node, p2)``: each its
own executor and work folder on the host (``localhost``, ``localhost#2``), their requirements
deployed once, all started before any is awaited; results, status, logs, report and cancel per
deployment. Real ansible-runner on this machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from netunicorn.base.experiment import Experiment as NetunicornExperiment
from netunicorn.base.experiment import ExperimentStatus
from netunicorn.base.pipeline import Pipeline as NetunicornPipeline
from netunicorn.base.types import FlagValues as NetunicornFlagValues
from netunicorn.library.tasks.basic import SleepTask
from netunicorn.library.tasks.flags import SetFlagTask, WaitForExactFlagResultTask

from unicorn_ansible import RemoteClient
from unicorn_ansible.engine.rundir import RunDir

from .conftest import CLI, Env

cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: what `results --json` gives for a node of one pipeline (unchanged by several pipelines per node)
ORDINARY_KEYS = {"node", "executor_id", "status", "prepared", "error", "success", "results", "tasks", "timings", "not_run",
                 "reported", "artifacts", "stopped_processes", "notice"}

FLAGS = '''
import os
from unicorn_ansible import Experiment, FlagValues, Pipeline, Task, set_flag, wait_for_flag


class Waiter(Task):
    requirements = ["echo shared >> requirements.log", "echo waiter >> requirements.log"]

    def run(self):
        wait_for_flag("go", FlagValues(text_value="now", int_value=1), timeout=60)
        return {"cwd": os.getcwd(), "environment": os.environ["UNICORN_ENVIRONMENT"]}


class Setter(Task):
    requirements = ["echo shared >> requirements.log", "echo setter >> requirements.log"]

    def run(self):
        set_flag("go", FlagValues(text_value="now", int_value=1))
        return {"cwd": os.getcwd(), "environment": os.environ["UNICORN_ENVIRONMENT"]}


def experiment(nodes):
    node = nodes.take(1)[0]
    # pipeline 1 waits for the flag pipeline 2 sets: both must run at once
    return (Experiment().append(node, Pipeline().then(Waiter(name="wait")))
            .append(node, Pipeline().then(Setter(name="set"))))
'''


def test_two_pipelines_on_one_node_coordinate_through_a_flag(env: Env) -> None:
    env.write("flags.py", FLAGS)
    started = time.monotonic()
    done = env.cli("run", "flags.py", "--name", "pair", check=0)
    assert time.monotonic() - started < 60  # the waiter did not wait out its timeout
    assert "1 node(s), 2 pipelines" in done.stderr
    results = env.results("pair")
    first, second = results["nodes"]
    assert (first["node"], first["status"], second["node"], second["status"]) == (
        "localhost", "ok", "localhost#2", "ok")
    assert set(first) == ORDINARY_KEYS and set(second) == ORDINARY_KEYS | {"host"}
    assert second["host"] == "localhost"
    waiter, setter = first["tasks"]["wait"][0]["value"], second["tasks"]["set"][0]["value"]
    # each its own work folder on the host, one environment for both, its requirements each once
    run_id = RunDir(env.home / "runs" / "pair").record()["run_id"]
    assert waiter["cwd"] == str(env.default_host_dir() / "runs" / run_id)
    assert setter["cwd"] == str(env.default_host_dir() / "runs" / f"{run_id}#2")
    assert waiter["environment"] == setter["environment"]
    log = Path(waiter["environment"]) / "requirements.log"
    assert log.read_text().split() == ["shared", "waiter", "setter"]
    assert RunDir(env.home / "runs" / "pair").deploy_report("localhost#2").skipped is True  # type: ignore[union-attr]
    flags = json.loads(env.cli("flags", "pair", "go", "--json", check=0).stdout)
    assert flags == {"go": {"text_value": "now", "int_value": 1}}

    status = json.loads(env.cli("status", "pair", "--json", check=0).stdout)
    assert [(n["node"], n["phase"], n["done"]) for n in status["nodes"]] == [
        ("localhost", "executed", 1), ("localhost#2", "executed", 1)]
    both = env.cli("logs", "pair", "--node", "localhost", check=0).stdout
    assert "===== localhost: task wait" in both and "===== localhost#2: task set" in both
    one = env.cli("logs", "pair", "--node", "localhost#2", check=0).stdout
    assert "===== localhost#2: task set" in one and "===== localhost:" not in one
    env.cli("report", "pair", "-o", str(env.root / "pair.html"), check=0)
    report = (env.root / "pair.html").read_text()
    assert "localhost#2 <small>(a pipeline of node localhost)</small>" in report


CANCEL = '''
import os, subprocess, time
from unicorn_ansible import Experiment, Pipeline, Task


class Quick(Task):
    def run(self):
        return "kept"


class StartsAChild(Task):
    def __init__(self, folder, name):
        self.folder = folder
        super().__init__(name=name)

    def run(self):
        child = subprocess.Popen(["sleep", "300"], start_new_session=True)
        with open(os.path.join(self.folder, self.name + ".pids"), "w") as handle:
            handle.write(f"{os.getpid()} {child.pid}")
        time.sleep(300)


def experiment(nodes):
    node = nodes.take(1)[0]
    return (Experiment().append(node, Pipeline().then(Quick(name="quick")).then(StartsAChild(FOLDER, "one")))
            .append(node, Pipeline().then(StartsAChild(FOLDER, "two"))))
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _wait_for(paths: list[Path], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() and p.read_text().strip() for p in paths):
        assert time.monotonic() < deadline, f"timed out waiting for {paths}"
        time.sleep(0.2)


def test_cancel_stops_every_pipeline_of_the_node_and_leaves_no_process(env: Env) -> None:
    folder = env.root / "pids"
    folder.mkdir()
    env.write("cancel.py", CANCEL.replace("FOLDER", repr(str(folder))))
    process = subprocess.Popen(CLI + ["run", "cancel.py", "--name", "pair-cancel"], env=env.vars, cwd=env.root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pid_files = [folder / "one.pids", folder / "two.pids"]
        _wait_for(pid_files, 120)
        pids = [int(pid) for path in pid_files for pid in path.read_text().split()]
        assert all(_alive(pid) for pid in pids)
        done = env.cli("cancel", "pair-cancel", check=0)
        assert "localhost#2" in done.stdout
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1
    assert [pid for pid in pids if _alive(pid)] == []
    results = env.results("pair-cancel")
    assert results["status"] == "cancelled"
    assert [(n["node"], n["status"]) for n in results["nodes"]] == [
        ("localhost", "cancelled"), ("localhost#2", "cancelled")]
    assert results["nodes"][0]["tasks"]["quick"] == [{"type": "Success", "value": "kept"}]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _client(home: Path) -> RemoteClient:
    """This machine as one host; netunicorn's default DockerImage() runs as ShellExecution (no engine)."""
    inventory = home / "inventory.ini"
    inventory.write_text("\n".join(["[lab]", "localhost", "", "[lab:vars]", "ansible_connection=local",
                                    f"ansible_python_interpreter={sys.executable}",
                                    f"unicorn_remote_root={home / 'hosts-root'}", "unicorn_container_engine=none",
                                    "unicorn_architecture=linux/amd64"]) + "\n")
    return RemoteClient(inventory=str(inventory))


def _wait(client: RemoteClient, name: str, until: ExperimentStatus) -> object:
    for _ in range(600):
        info = client.get_experiment_status(name)
        if info.status == until:
            return info
        time.sleep(0.5)
    raise AssertionError(f"{name} never reached {until}")


def test_netunicorns_flags_example_two_pipelines_on_one_machine(home: Path) -> None:
    """netunicorn's own Experiment, append(node, p1).append(node, p2), netunicorn-library's flag tasks."""
    client = _client(home)
    node = client.get_nodes().take(1)[0]
    ready = NetunicornFlagValues(int_value=1)
    waits = NetunicornPipeline().then(WaitForExactFlagResultTask("ready", ready, sleep_time=0.2, attempts=300,
                                                                 name="wait"))
    sets = NetunicornPipeline().then(SleepTask(1, name="sleep")).then(SetFlagTask("ready", ready, name="set"))
    experiment = NetunicornExperiment().append(node, waits).append(node, sets)
    client.prepare_experiment(experiment, "flags-example")
    info = _wait(client, "flags-example", ExperimentStatus.READY)
    assert [(d.node.name, d.executor_id, d.prepared) for d in info.experiment] == [
        ("localhost", "localhost", True), ("localhost", "localhost#2", True)]
    assert all("as ShellExecution" in d.notices[0] for d in info.experiment)  # each deployment says how it ran
    client.start_execution("flags-example")
    info = _wait(client, "flags-example", ExperimentStatus.FINISHED)
    assert [(r.node.name, r.executor_id, r.status, r.error) for r in info.execution_result] == [
        ("localhost", "localhost", "ok", None), ("localhost", "localhost#2", "ok", None)]
    waited = info.execution_result[0].result[0].unwrap()["wait"][0].unwrap()
    assert waited == {"text_value": None, "int_value": 1}  # the flag's values, as the store gave them
    assert client.get_flag_values("flags-example", "ready").int_value == 1


def test_cancel_executors_stops_one_pipeline_of_a_node_and_the_other_goes_on(home: Path) -> None:
    client = _client(home)
    node = client.get_nodes().take(1)[0]
    experiment = (NetunicornExperiment().append(node, NetunicornPipeline().then(SleepTask(60, name="long")))
                  .append(node, NetunicornPipeline().then(SleepTask(4, name="short"))))
    client.prepare_experiment(experiment, "half")
    _wait(client, "half", ExperimentStatus.READY)
    client.start_execution("half")
    _wait(client, "half", ExperimentStatus.RUNNING)
    time.sleep(2)
    started = time.monotonic()
    client.cancel_executors("half", ["localhost"])
    info = _wait(client, "half", ExperimentStatus.FINISHED)
    assert time.monotonic() - started < 50
    assert [(r.executor_id, r.status) for r in info.execution_result] == [
        ("localhost", "cancelled"), ("localhost#2", "ok")]


DEPLOY_FAILURES = '''
from unicorn_ansible import DockerImage, Experiment, Pipeline, Task


class Hello(Task):
    def run(self):
        return "hello"


class Broken(Task):
    requirements = ["echo broken-requirement >&2; exit 7"]

    def run(self):
        return "never"


def experiment(nodes):
    h1, h2 = nodes.take(2)
    return (Experiment()
            .append(h1, Pipeline().then(Hello(name="hello")))
            .append(h1, Pipeline(environment_definition=DockerImage(image="unicorn-test/none:1")).then(
                Hello(name="boxed")))
            .append(h2, Pipeline().then(Hello(name="hello")))
            .append(h2, Pipeline().then(Broken(name="broken"))))
'''


def test_a_failed_deployment_is_its_own_and_a_failed_shared_environment_fails_the_nodes_pipelines(env: Env) -> None:
    inventory = env.local_inventory(["h1", "h2"], "unicorn_container_engine=none")
    env.write("failures.py", DEPLOY_FAILURES)
    env.cli("run", "failures.py", "-i", str(inventory), "--name", "failures", check=1)
    results = {n["node"]: n for n in env.results("failures")["nodes"]}
    assert list(results) == ["h1", "h1#2", "h2", "h2#2"]
    # h1: its DockerImage pipeline cannot deploy on a host without an engine; its other one runs
    assert results["h1"]["status"] == "ok" and results["h1"]["tasks"]["hello"][0]["value"] == "hello"
    assert results["h1#2"]["status"] == "deploy_failed" and "container engine" in results["h1#2"]["error"]
    # h2: its pipelines share one environment, whose requirement fails: each says which
    for name in ("h2", "h2#2"):
        assert results[name]["status"] == "deploy_failed", results[name]
        assert "exit 7" in results[name]["error"] or "exit code 7" in results[name]["error"]
    assert "broken-requirement" in env.cli("logs", "failures", "--node", "h2#2", check=0).stdout


COUNTED = '''
import os, time
from unicorn_ansible import Experiment, Pipeline, Task


class Counted(Task):
    def __init__(self, seconds, name):
        self.seconds = seconds
        super().__init__(name=name)

    def run(self):
        with open(os.path.join(FOLDER, self.name + ".runs"), "a") as handle:
            handle.write("ran\\n")
        time.sleep(self.seconds)
        return self.name


def experiment(nodes):
    node = nodes.take(1)[0]
    return (Experiment().append(node, Pipeline().then(Counted(6, "first")))
            .append(node, Pipeline().then(Counted(4, "second")))
            .append(node, Pipeline().then(Counted(300, "limited")), keep_alive_timeout_minutes=0.1))
'''


def _status_phase(env: Env, run: str, executor: str) -> str | None:
    try:
        return json.loads((env.home / "runs" / run / "nodes" / executor / "status.json").read_text()).get("phase")
    except (OSError, ValueError):
        return None


def test_collect_after_a_controller_crash_fetches_every_pipeline_and_each_keeps_its_time_limit(env: Env) -> None:
    folder = env.root / "runs-of"
    folder.mkdir()
    env.write("counted.py", COUNTED.replace("FOLDER", repr(str(folder))))
    controller = subprocess.Popen(CLI + ["run", "counted.py", "--name", "crashed"], env=env.vars, cwd=env.root,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for([folder / "first.runs", folder / "second.runs", folder / "limited.runs"], 120)
        os.kill(controller.pid, signal.SIGKILL)  # kill -9 of the controller: the pipelines go on
        controller.wait(timeout=10)
    finally:
        if controller.poll() is None:
            controller.kill()
    collected = env.cli("collect", "crashed", check=1)  # the limited pipeline timed out: exit 1
    assert "localhost#3" in collected.stdout
    results = env.results("crashed")
    assert [(n["node"], n["status"]) for n in results["nodes"]] == [
        ("localhost", "ok"), ("localhost#2", "ok"), ("localhost#3", "timed_out")]
    assert results["nodes"][1]["tasks"]["second"] == [{"type": "Success", "value": "second"}]
    assert "time limit" in results["nodes"][2]["error"]
    # nothing ran twice
    assert [(folder / f"{name}.runs").read_text() for name in ("first", "second", "limited")] == ["ran\n"] * 3
    assert _status_phase(env, "crashed", "localhost#3") == "timed_out"
