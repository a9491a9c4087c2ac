"""The Python client's runs as netunicorn's server keeps them (issue 24): a deployment that failed
to prepare is never started, a run is owned by a controller process of its own that outlives the
process that started it, and the verbs netunicorn users call behave as netunicorn's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unicorn_ansible import Client, Experiment, ExperimentStatus, Pipeline, RemoteClientException, Task
from unicorn_ansible.engine.controller import is_alive
from unicorn_ansible.engine.rundir import RunDir

from .conftest import Env
from .test_client import _poll as _wait


class Fails(Task):
    requirements = ["true", "exit 3"]

    def run(self):
        return "ran anyway"


class Measure(Task):
    def run(self):
        return 42


class SaysWho(Task):
    """Writes its NETUNICORN_EXECUTOR_ID into a file, then sleeps longer than any test waits."""

    def __init__(self, folder: str, seconds: float = 300) -> None:
        self.folder, self.seconds = folder, seconds
        super().__init__(name="who")

    def run(self):
        who = os.environ["NETUNICORN_EXECUTOR_ID"]
        Path(self.folder, who.replace("#", "_")).write_text(who)
        time.sleep(self.seconds)
        return who


def _wait_for_files(folder: Path, count: int, timeout: float = 120) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.iterdir())
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"only {sorted(folder.iterdir())} in {folder} after {timeout} s")


def test_a_deployment_that_failed_to_prepare_is_never_started_and_says_why(env: Env) -> None:
    client = Client(inventory=str(env.local_inventory(["h1", "h2"])))
    by = {node.name: node for node in client.get_nodes()}
    experiment = (Experiment().append(by["h1"], Pipeline().then(Fails(name="fails")))
                  .append(by["h2"], Pipeline().then(Measure(name="measure"))))
    client.prepare_experiment(experiment, "failing")
    info = _wait(client, "failing", ExperimentStatus.READY)
    why = "requirement 2/2 on h1 failed with exit code 3: exit 3"
    assert [(d.node.name, d.prepared, str(d.error) if d.error else None) for d in info.experiment] == [
        ("h1", False, why), ("h2", True, None)]
    client.start_execution("failing")
    info = _wait(client, "failing", ExperimentStatus.FINISHED)
    failed, fine = info.execution_result
    assert (failed.executor_id, failed.status, failed.result) == ("h1", "deploy_failed", None)
    assert failed.error == f"Executor is not prepared: {why}"  # netunicorn's words, then the cause
    assert [(d.node.name, d.prepared) for d in info.experiment] == [("h1", False), ("h2", True)]
    assert not (env.run_dir_on_host("h1", "failing") / "state.json").exists()  # its executor never started
    assert fine.error is None and fine.result[0].unwrap()["measure"][0].unwrap() == 42
    assert [type(t).__name__ for stage in fine.pipeline.tasks for t in stage] == ["Measure"]  # netunicorn's .pipeline
    # the command line says the same
    status = json.loads(env.cli("status", "failing", "--json", check=0).stdout)
    assert [(n["node"], n["phase"], n["error"]) for n in status["nodes"]] == [
        ("h1", "deploy_failed", why), ("h2", "executed", None)]


STARTER = '''
import sys, time
from pathlib import Path
from unicorn_ansible import Client, Experiment, ExperimentStatus, Pipeline, Task

class Slow(Task):
    def run(self):
        time.sleep(4)
        return "done"

client = Client(inventory=sys.argv[1])
if sys.argv[2] == "prepare":
    pipeline = Pipeline().then(Slow(name="slow"))
    client.prepare_experiment(Experiment().map(pipeline, client.get_nodes()), "owned")
    print("prepared", flush=True)                   # and the script ends: the deployment goes on
else:
    client.wait("owned", ExperimentStatus.READY, timeout=120)
    client.start_execution("owned")
    print("started", flush=True)
    time.sleep(600)                                 # a notebook kernel, until it is killed
'''


def test_a_run_outlives_the_processes_that_started_it_and_every_client_sees_it(env: Env) -> None:
    inventory = str(env.local_inventory(["h1", "h2"]))
    script = env.write("starter.py", STARTER)
    prepared = subprocess.run([sys.executable, str(script), inventory, "prepare"], env=env.vars, capture_output=True,
                              text=True, timeout=120)
    assert prepared.returncode == 0 and prepared.stdout == "prepared\n", prepared.stderr
    kernel = subprocess.Popen([sys.executable, str(script), inventory, "start"], env=env.vars, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert kernel.stdout is not None and kernel.stdout.readline() == "started\n"
        run = RunDir(env.home / "runs" / "owned")
        controller = run.record()["controller"]
        assert controller["pid"] != kernel.pid and is_alive(controller)
        assert os.getsid(controller["pid"]) != os.getsid(kernel.pid)  # a session of its own: no Ctrl-C reaches it
        os.killpg(kernel.pid, signal.SIGINT)  # Ctrl-C, then a kernel restart kills the kernel's process group
        os.killpg(kernel.pid, signal.SIGKILL)
    finally:
        kernel.kill()
        kernel.wait(30)
    client, other = Client(inventory=inventory), Client(inventory=inventory)
    with pytest.raises(RemoteClientException, match=r"^experiment owned is still RUNNING \(its controller, pid \d+, "
                                                    r"plays it\); cancel_experiment\('owned'\) first"):
        client.delete_experiment("owned")
    info = _wait(client, "owned", ExperimentStatus.FINISHED)
    assert [(r.executor_id, r.status, r.result[0].unwrap()["slow"][0].unwrap()) for r in info.execution_result] == [
        ("h1", "ok", "done"), ("h2", "ok", "done")]  # results arrived: no collect
    seen = other.get_experiment_status("owned")
    assert seen.status == ExperimentStatus.FINISHED and [r.status for r in seen.execution_result] == ["ok", "ok"]
    assert json.loads(env.cli("status", "owned", "--json", check=0).stdout)["status"] == "finished"
    assert not run.controller_log.read_text().strip()  # the controller had nothing to complain about


def test_typed_passwords_reach_the_runs_controller_on_a_pipe_only(env: Env) -> None:
    secret = "s3cret-become-7c1e"
    client = Client(inventory=str(env.local_inventory(["h1"])), become_password=secret)
    (env.root / "who").mkdir()
    experiment = Experiment().map(Pipeline().then(SaysWho(str(env.root / "who"), seconds=3)), client.get_nodes())
    client.prepare_experiment(experiment, "secret")
    _wait(client, "secret", ExperimentStatus.READY)
    client.start_execution("secret")
    _wait_for_files(env.root / "who", 1)
    pid = RunDir(env.home / "runs" / "secret").record()["controller"]["pid"]
    for what in ("environ", "cmdline"):
        assert secret.encode() not in Path(f"/proc/{pid}/{what}").read_bytes(), what
    info = _wait(client, "secret", ExperimentStatus.FINISHED)
    assert [r.status for r in info.execution_result] == ["ok"]
    for path in (env.home / "runs" / "secret").rglob("*"):
        assert not path.is_file() or secret.encode() not in path.read_bytes(), path


def test_netunicorns_verbs_on_executors_flags_and_deletion(env: Env) -> None:
    """cancel_executors([id]) without the run's name, with the task's own NETUNICORN_EXECUTOR_ID;
    an unset flag raises; delete right after a cancel finished the run."""
    client = Client(inventory=str(env.local_inventory(["h1", "h2"])))
    (env.root / "who").mkdir()
    pipeline = Pipeline().then(SaysWho(str(env.root / "who")))
    experiment = Experiment().map(pipeline, client.get_nodes())
    client.prepare_experiment(experiment, "verbs")
    with pytest.raises(RemoteClientException, match="^flag never-set not found for experiment verbs"):
        client.get_flag_values("verbs", "never-set")
    _wait(client, "verbs", ExperimentStatus.READY)
    client.start_execution("verbs")
    ids = [path.read_text() for path in _wait_for_files(env.root / "who", 2)]
    assert ids == [d.executor_id for d in experiment] == ["h1", "h2"]
    client.cancel_executors([ids[0]])  # netunicorn's call: the executors only
    deadline = time.monotonic() + 120
    while RunDir(env.home / "runs" / "verbs").node_status("h1").phase != "cancelled":
        assert time.monotonic() < deadline, RunDir(env.home / "runs" / "verbs").node_status("h1")
        time.sleep(0.3)
    assert client.get_experiment_status("verbs").status == ExperimentStatus.RUNNING  # h2 goes on
    client.cancel_experiment("verbs")
    info = client.get_experiment_status("verbs")
    assert info.status == ExperimentStatus.FINISHED
    started = time.monotonic()
    client.delete_experiment("verbs")  # no "still FINISHED; cancel it first"
    assert not (env.home / "runs" / "verbs").exists() and time.monotonic() - started < 30
    with pytest.raises(RemoteClientException, match="^cannot tell which run's executor h1 to cancel: no run being played has it"):
        client.cancel_executors(["h1"])


def test_get_experiments_with_47_runs_reads_no_log_it_is_not_asked_for(env: Env) -> None:
    client = Client(inventory=str(env.local_inventory(["h1"])))
    client.run(Experiment().map(Pipeline().then(Measure(name="measure")), client.get_nodes()), "first")
    logs = env.home / "runs" / "first" / "nodes" / "h1" / "logs"
    (logs / "measure.log").write_text("x" * 100 + "\n" * 1 + ("line of a chatty task\n" * 150_000))
    for number in range(46):
        shutil.copytree(env.home / "runs" / "first", env.home / "runs" / f"copy-{number}", symlinks=True)
    started = time.monotonic()
    every = client.get_experiments()
    seconds = time.monotonic() - started
    assert len(every) == 47 and seconds < 0.5, seconds
    [result] = every["copy-7"].execution_result
    assert result.result[0].unwrap()["measure"][0].unwrap() == 42 and len(result.logs) > 150_000
