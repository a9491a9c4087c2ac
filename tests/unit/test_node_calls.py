"""One round trip per call: the deployment's shell command ships the bundle on stdin and runs it,
and the executor's last answer carries a small outbox (roles/unicorn's unicorn_deploy, unicorn_node)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import cloudpickle

from unicorn_ansible import Pipeline, Task
from unicorn_ansible.ansible.deploy_action import deploy_argv, deployment_outcome, ship_and_run
from unicorn_ansible.ansible.node_action import answer_of, deployed_interpreter
from unicorn_ansible.compiler.bundle import build_bundle
from unicorn_ansible.model.experiment import serialize_for_node
from unicorn_ansible.node.protocol import DEPLOY_REPORT, NODE_SPEC, OUTBOX, PIPELINE


class Twice(Task):
    def run(self):
        return "x" * 5000


def _sh(command: str, home: Path, data: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", command], input=data, capture_output=True, check=False, timeout=120,
                          env=dict(os.environ, HOME=str(home)))


def test_the_bundle_lands_whole_in_the_work_folder_and_runs_from_there(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "cache")
    home = tmp_path / "home dir"
    home.mkdir()
    workdir = "~/.unicorn-ansible/hosts/h1/runs/it's $HOME `x`"
    command = ship_and_run(sys.executable, workdir, "unicorn-node.pyz", ["state", "--workdir", workdir])
    done = _sh(command, home, bundle.read_bytes())
    assert done.returncode == 0, done.stderr
    folder = home / ".unicorn-ansible" / "hosts" / "h1" / "runs" / "it's $HOME `x`"
    answer = answer_of(done.stdout.decode())
    assert answer is not None and answer["status"] == "not started"
    assert answer["outbox"] == str(folder / OUTBOX)  # the executor took ~ as the same $HOME
    assert (folder / "unicorn-node.pyz").read_bytes() == bundle.read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["unicorn-node.pyz"]  # no part file left
    assert folder.stat().st_mode & 0o077 == 0 and (folder / "unicorn-node.pyz").stat().st_mode & 0o077 == 0


def test_a_failing_executor_is_a_failing_call(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "cache")
    command = ship_and_run(sys.executable, str(tmp_path / "w"), "unicorn-node.pyz", ["no-such-command"])
    assert _sh(command, tmp_path, bundle.read_bytes()).returncode != 0


def test_the_deployment_command_line_and_outcome_are_the_actions_not_templates() -> None:
    assert deploy_argv("~/w", "auto", "", False) == [
        "deploy", "--workdir", "~/w", "--container-engine", "auto", "--container-base-image", ""]
    assert deploy_argv("~/w", "podman", "python:3.11-slim", True)[-1] == "--start"
    # changed: the environment was built; not changed: found built; failed: any exit but 0 (or none)
    assert deployment_outcome({"rc": 0, "stdout": '{"ok": true, "skipped": false}'}) == {
        "rc": 0, "stdout": '{"ok": true, "skipped": false}', "changed": True}
    assert deployment_outcome({"rc": 0, "stdout": '\r\n{"ok": true, "skipped": true}'})["changed"] is False
    for result in ({"rc": 7, "stdout": ""}, {"msg": "no connection"}):
        outcome = deployment_outcome(dict(result))
        assert outcome["failed"] is True and outcome["changed"] is False and outcome["msg"]
    assert deployment_outcome({"msg": "no connection"})["msg"] == "no connection"


def _started(tmp_path: Path, inline: int) -> tuple[Path, dict]:
    bundle = build_bundle(tmp_path / "cache")
    work = tmp_path / f"work{inline}"
    work.mkdir()
    module = sys.modules[__name__]  # the executor cannot import this test module: ship it by value
    cloudpickle.register_pickle_by_value(module)
    try:
        (work / PIPELINE).write_bytes(serialize_for_node(Pipeline().then(Twice(name="twice"))))
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    (work / NODE_SPEC).write_text("{}")
    (work / DEPLOY_REPORT).write_text(json.dumps({"ok": True, "started": 1.0, "finished": 2.0}))  # deployed
    done = subprocess.run([sys.executable, str(bundle), "start", "--workdir", str(work), "--timeout", "60",
                           "--inline-outbox", str(inline)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = answer_of(done.stdout)
    assert answer is not None and answer["status"] == "finished"
    return work, answer


def test_the_last_answer_carries_a_small_outbox_as_it_is_on_the_host(tmp_path: Path) -> None:
    work, answer = _started(tmp_path, 768 * 1024)
    assert base64.b64decode(answer["outbox_data"]) == (work / OUTBOX).read_bytes()


def test_a_larger_outbox_stays_on_the_host_for_the_transfer(tmp_path: Path) -> None:
    work, answer = _started(tmp_path, 1000)
    assert "outbox_data" not in answer and (work / OUTBOX).stat().st_size > 1000
    assert json.loads(json.dumps(answer))["outbox"] == str(work / OUTBOX)


def test_start_runs_with_the_python_the_deployment_answered_for_that_deployment(tmp_path: Path) -> None:
    """A deployment's answer names its executor's Python (its environment's); the start of that
    deployment runs with it (and forks the executor). Other deployments, a failed one, a container
    or no deployment in this playbook: the role's python."""
    bundle = build_bundle(tmp_path / "cache")
    work = tmp_path / "w"
    (tmp_path / "w").mkdir()
    (work / "deploy.json").write_text(json.dumps({"node": "h1", "commands": ["true"]}))
    done = subprocess.run([sys.executable, str(bundle), "deploy", "--workdir", str(work)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    deployed = {"unicorn_deployment": "h1", "rc": 0, "stdout": "\r\n" + done.stdout}
    python = deployed_interpreter({"unicorn_deploy": {"results": [deployed]}}, "h1")
    assert python == str(work / "env" / "bin" / "python") and os.access(python, os.X_OK)
    assert deployed_interpreter({"unicorn_deploy": {"results": [deployed]}}, "h2") is None
    assert deployed_interpreter({"unicorn_deploy": {"results": [dict(deployed, rc=1)]}}, "h1") is None
    assert deployed_interpreter({}, "h1") is None
    container = dict(deployed, stdout=json.dumps({"ok": True, "interpreter": None}))
    assert deployed_interpreter({"unicorn_deploy": {"results": [container]}}, "h1") is None
