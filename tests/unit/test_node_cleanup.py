"""Node side: every process a pipeline or a deployment started is stopped when it ends (or is
cancelled, or runs out of time), new sessions and double forks included; requirements never
wait for input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle

from unicorn_ansible import Pipeline, Task
from unicorn_ansible.model.experiment import serialize_for_node
from unicorn_ansible.node.deploy import deploy as deploy_spec
from unicorn_ansible.node.protocol import STARTED
from unicorn_ansible.node.scheduler import run_pipeline
from unicorn_ansible.node.wire import DeploySpec

PYTHON = "%d.%d" % sys.version_info[:2]


class LeavesProcesses(Task):
    """Starts a sleep in a new session and a double-forked one, records their pids, returns."""

    def __init__(self, folder, seconds, keep=False, fail=False, name=None):
        self.folder, self.seconds, self.keep_processes, self.fail = folder, seconds, keep, fail
        super().__init__(name=name)

    def run(self):
        import subprocess as sp

        pids = [sp.Popen(["sleep", str(self.seconds)], start_new_session=True).pid]
        double = sp.run(["/bin/sh", "-c", f"setsid sleep {self.seconds + 1} >/dev/null 2>&1 & echo $!"],
                        capture_output=True, text=True)
        pids.append(int(double.stdout))
        with open(f"{self.folder}/pids-{self.name}", "w") as handle:
            handle.write(" ".join(map(str, pids)))
        if self.fail:
            raise RuntimeError("the task broke after starting its processes")
        return pids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pids(folder: Path, name: str) -> list[int]:
    return [int(pid) for pid in (folder / f"pids-{name}").read_text().split()]


def _ship(pipeline: Pipeline) -> Pipeline:
    """The pipeline as the node gets it (the test module travels by value)."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.loads(serialize_for_node(pipeline))
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def test_processes_left_by_tasks_are_stopped_when_the_pipeline_ends_unless_kept(tmp_path: Path) -> None:
    pipeline = Pipeline(early_stopping=False).then([
        LeavesProcesses(str(tmp_path), 751, name="leaves"),
        LeavesProcesses(str(tmp_path), 753, fail=True, name="raises"),
        LeavesProcesses(str(tmp_path), 755, keep=True, name="keeps"),
    ])
    state = run_pipeline(_ship(pipeline), str(tmp_path / "w"))
    try:
        stopped = {entry["pid"] for entry in state["stopped_processes"]}
        for name in ("leaves", "raises"):
            for pid in _pids(tmp_path, name):
                assert not _alive(pid), f"{name}'s process {pid} outlived the pipeline"
                assert pid in stopped
        kept = _pids(tmp_path, "keeps")
        assert all(_alive(pid) for pid in kept) and not stopped & set(kept)
        assert any("sleep 751" in entry["command"] for entry in state["stopped_processes"])
    finally:
        for pid in _pids(tmp_path, "keeps"):
            os.kill(pid, 9)


def _node(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "unicorn_ansible.node", *args], capture_output=True, text=True,
                          timeout=60)
    return json.loads(done.stdout.strip().splitlines()[-1])


def deploy(workdir: str, fields: dict) -> dict:
    """Deploy ``fields`` (deploy.json's); the report as deploy-report.json holds it."""
    return deploy_spec(workdir, DeploySpec.from_untrusted(fields, "deploy.json")).to_json()


def test_a_requirement_past_its_time_limit_is_stopped_and_named(tmp_path: Path) -> None:
    spec = {"node": "n1", "python": PYTHON, "requirement_timeout": 1,
            "commands": ["true", "setsid sleep 761 & sleep 762"]}
    began = time.monotonic()
    report = deploy(str(tmp_path), spec)
    assert time.monotonic() - began < 60  # bounded: never the sleep's 762 s
    assert not report["ok"]
    assert "requirement 2/2 on n1 did not finish within 1 s (--requirement-timeout)" in report["error"]
    assert "setsid sleep 761 & sleep 762" in report["error"]
    left = subprocess.run(["pgrep", "-f", "sleep 76[12]"], capture_output=True, text=True).stdout.split()
    assert left == []
    whole = deploy(str(tmp_path), dict(spec, requirement_timeout=None, time_limit=1, env_dir="env2"))
    assert "did not finish within the node's time limit of 1 s (--run-timeout)" in whole["error"]


def test_a_requirement_waiting_for_input_fails_at_once_with_a_hint(tmp_path: Path) -> None:
    spec = {"node": "n1", "python": PYTHON, "commands": ["cat /dev/tty; read answer; test -n \"$answer\""]}
    began = time.monotonic()
    report = deploy(str(tmp_path), spec)
    assert time.monotonic() - began < 60 and not report["ok"]  # no terminal, stdin empty: no wait
    sudo = deploy(str(tmp_path), dict(spec, env_dir="env2", commands=[
        "echo 'sudo: a terminal is required to read the password; either use the -S option' >&2; exit 1"]))
    assert "waited for sudo's password" in sudo["error"] and "-K" in sudo["error"] and "become" in sudo["error"]
    apt = deploy(str(tmp_path), dict(spec, env_dir="env3", commands=["echo $DEBIAN_FRONTEND > frontend"]))
    assert apt["ok"] and (tmp_path / "env3" / "frontend").read_text().strip() == "noninteractive"


def test_cancel_during_deployment_stops_its_processes_and_the_pipeline_never_starts(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "deploy.json").write_text(json.dumps(
        {"node": "n1", "python": PYTHON, "commands": ["setsid sleep 771 & sleep 772"]}))
    (workdir / "pipeline.pkl").write_bytes(serialize_for_node(Pipeline()))
    (workdir / "node.json").write_text("{}")
    deploying = subprocess.Popen([sys.executable, "-m", "unicorn_ansible.node", "deploy", "--workdir", str(workdir)],
                                 stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-f", "^sleep 771"]).returncode != 0:
        time.sleep(0.1)
    state = _node("cancel", "--workdir", str(workdir))
    out, _ = deploying.communicate(timeout=20)
    assert state["status"] == "cancelled" and state["stopped_count"] >= 3  # deploy, sh, the sleeps
    listed = json.loads((workdir / "state.json").read_text())["stopped_processes"]  # what the results show
    assert len(listed) == state["stopped_count"] and any("sleep 771" in entry["command"] for entry in listed)
    assert "cancelled" in json.loads(out)["error"] and deploying.returncode == 1
    assert subprocess.run(["pgrep", "-f", "sleep 77[12]"], capture_output=True).stdout == b""
    started = _node("start", "--workdir", str(workdir))
    assert started["already_started"] and started["status"] == "cancelled"


def test_tracebacks_on_hosts_name_the_experiment_file_not_dynamic_code(tmp_path: Path) -> None:
    import traceback

    class Boom(Task):
        def run(self):
            raise ValueError("boom")

    shipped = _ship(Pipeline().then(Boom(name="boom")))
    try:
        shipped.tasks[0][0].run()
    except ValueError:
        text = traceback.format_exc()
    assert __file__ in text and "<dynamic-code>" not in text


def test_deploy_with_start_starts_the_pipeline_only_after_a_successful_deployment(tmp_path: Path) -> None:
    for name, commands in (("good", ["true"]), ("bad", ["exit 3"])):
        workdir = tmp_path / name
        workdir.mkdir()
        (workdir / "deploy.json").write_text(json.dumps({"node": "n1", "python": PYTHON, "commands": commands}))
        (workdir / "pipeline.pkl").write_bytes(serialize_for_node(Pipeline()))
        (workdir / "node.json").write_text("{}")
    good = _node("deploy", "--workdir", str(tmp_path / "good"), "--start")
    assert good["ok"] and good["started"]["already_started"] is False
    # the execution play's call finds it started: never twice (run as a package here, not from the
    # bundle, the executor cannot load in the deployment's environment; on a host it runs, see e2e)
    assert (tmp_path / "good" / STARTED).exists()
    assert _node("start", "--workdir", str(tmp_path / "good"))["already_started"]
    bad = _node("deploy", "--workdir", str(tmp_path / "bad"), "--start")
    assert not bad["ok"] and "started" not in bad
    assert not (tmp_path / "bad" / STARTED).exists()


DETACHES_AS_THE_SESSION_ENDS = '''
import os, signal, sys, time
from unicorn_ansible.node.processes import fork_detached, session_signals_held

folder = sys.argv[1]

def body():
    time.sleep(0.5)
    with open(os.path.join(folder, "alive"), "w") as handle:
        handle.write(str(os.getsid(0)))
    return 0

with open(os.path.join(folder, "out"), "wb") as out, session_signals_held():
    pid = fork_detached(body, ["executor"], out.fileno(), dict(os.environ), folder)
    os.killpg(os.getpgrp(), signal.SIGHUP)  # the SSH session's hangup, right after the fork
    with open(os.path.join(folder, "recorded"), "w") as handle:
        handle.write(str(pid))
time.sleep(5)  # the hangup ends this process here, once the child is known
'''


def test_an_executor_detached_as_its_session_hangs_up_survives_and_is_recorded(tmp_path: Path) -> None:
    # The controller killed as the pipeline starts: the host's pty hangs up on the process group
    # that is starting the executor. The child is not lost before its own session, nor started
    # without its pid written (a later collect would call it dead, or start a second one).
    starter = subprocess.Popen([sys.executable, "-c", DETACHES_AS_THE_SESSION_ENDS, str(tmp_path)],
                               start_new_session=True)
    assert starter.wait(timeout=10) == -signal.SIGHUP
    assert (tmp_path / "recorded").exists()
    deadline = time.monotonic() + 10
    while not (tmp_path / "alive").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "alive").exists(), (tmp_path / "out").read_text()
    assert int((tmp_path / "alive").read_text()) != starter.pid  # its own session, not the starter's
