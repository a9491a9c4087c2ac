"""The CLI: every table command's --json parses back; help has examples; exit codes as documented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unicorn_ansible.engine.rundir import RunDir

from .conftest import Env

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["run", "compile", "results", "status", "logs", "cancel", "collect", "list", "delete", "nodes", "testbed",
            "artifacts", "flags",
            "report", "sweep", "campaign"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(env: Env, command: str) -> None:
    done = env.cli(command, "--help", check=0)
    assert "Example" in done.stdout


def test_a_run_through_the_cli_commands(env: Env) -> None:
    inventory = env.local_inventory(["cli-a", "cli-b"])
    env.cli("run", str(ROOT / "examples" / "measure.py"), "-i", str(inventory), "--name", "cli-run", check=0)
    listed = json.loads(env.cli("list", "--json", check=0).stdout)
    assert [entry["name"] for entry in listed] == ["cli-run"] and listed[0]["nodes"] == 2
    status = json.loads(env.cli("status", "cli-run", "--json", check=0).stdout)
    assert status["status"] == "finished"
    assert {n["node"]: (n["phase"], n["done"], n["total"]) for n in status["nodes"]} == {
        "cli-a": ("executed", 4, 4), "cli-b": ("executed", 4, 4)}
    results = json.loads(env.cli("results", "cli-run", "--json", check=0).stdout)
    assert results["success"] and all(n["timings"] for n in results["nodes"])
    for timing in results["nodes"][0]["timings"]:
        assert timing["end"] >= timing["start"] > 0
    logs = env.cli("logs", "cli-run", "--node", "cli-a", check=0).stdout
    assert "requirement:" in logs and "task probe-localhost" in logs
    executor_log = env.cli("logs", "cli-run", "--node", "cli-b", "--executor", check=0).stdout
    assert "finished: 4 task(s) ran" in executor_log
    nodes = json.loads(env.cli("nodes", "-i", str(inventory), "--json", check=0).stdout)
    assert [n["name"] for n in nodes] == ["cli-a", "cli-b"]
    env.cli("delete", "cli-run", "--yes", check=0)
    assert json.loads(env.cli("list", "--json", check=0).stdout) == []
    missing = env.cli("results", "cli-run", check=2)
    assert "no run named cli-run" in missing.stderr


def test_python_api_results_filter_and_render(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import unicorn_ansible
    from unicorn_ansible.engine.lifecycle import load_experiment_file
    from unicorn_ansible.inventory import load_inventory

    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(env.home))
    inventory = env.local_inventory(["api-a"])
    pool = load_inventory([str(inventory)]).nodes()
    experiment = load_experiment_file(str(ROOT / "examples" / "hello.py"), lambda: pool)
    results = unicorn_ansible.run(experiment, inventory=[str(inventory)], name="api")
    assert results.success and repr(results) == "<RunResults api: 1 node(s): 1 ok>"
    assert [r.node for r in results.filter(status="ok")] == ["api-a"] and results.filter(status="failed") == []
    assert results["api-a"].tasks["hello"][0].unwrap().startswith("Hello from")
    assert "<table>" in results._repr_html_() and "api-a" in results._repr_html_()


def test_a_run_that_cannot_be_read_exits_1_a_usage_mistake_2(env: Env) -> None:
    broken = RunDir(env.home / "runs" / "broken")
    broken.path.mkdir(parents=True)
    broken.record_file.write_text("{half a record")
    failed = env.cli("results", "broken", check=1)  # a run failure (RunError)
    assert failed.stderr.startswith("error: ") and len(failed.stderr.strip().splitlines()) == 1
    env.cli("results", "no-such-run", check=2)  # a usage mistake
    env.cli("results", "bad name", check=2)
