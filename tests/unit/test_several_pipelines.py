"""Several pipelines on one node, compiled: each deployment its own folder and files named by its
executor id, a node's ShellExecution requirements once in one shared environment, the plays told
each host's executors; and results read back per deployment (old run records included)."""

from __future__ import annotations

import json
from pathlib import Path

from unicorn_ansible import DockerImage, Experiment, Pipeline, RuntimeContext, ShellExecution, Task
from unicorn_ansible.compiler.compile import compile_experiment
from unicorn_ansible.engine.rundir import RunDir, executors
from unicorn_ansible.inventory import Inventory
from unicorn_ansible.model.nodes import Node
from unicorn_ansible.results.load import load_results


class Needs(Task):
    def __init__(self, name: str, *requirements: str) -> None:
        self.requirements = list(requirements)
        super().__init__(name=name)

    def run(self) -> str:
        return self.name


def _inventory() -> Inventory:
    return Inventory(sources=["lab.ini"], hostvars={"h1": {}, "h2": {}})


def _experiment() -> Experiment:
    h1, h2 = Node("h1", {}), Node("h2", {})
    first = Pipeline(environment_definition=ShellExecution(
        runtime_context=RuntimeContext(environment_variables={"A": "1", "B": "first"}))).then(
        Needs("a", "pip install x", "echo a"))
    second = Pipeline(environment_definition=ShellExecution(
        runtime_context=RuntimeContext(environment_variables={"B": "second"}))).then(
        Needs("b", "pip install x", "echo b"))
    image = Pipeline(environment_definition=DockerImage(image="alpine:3")).then(Needs("c", "echo c"))
    return Experiment().append(h1, first).append(h2, first).append(h1, second).append(h1, image)


def _spec(run: RunDir, executor: str, name: str) -> dict:
    return json.loads((run.shipped_dir(executor) / name).read_text())


def test_each_deployment_is_compiled_in_its_own_folder_and_a_nodes_requirements_run_once(tmp_path: Path) -> None:
    from unicorn_ansible.compiler.settings import CompileOptions

    run = RunDir(compile_experiment(_experiment(), _inventory(), tmp_path / "run", "several",
                                    CompileOptions(redeploy=True)))
    record = run.record()
    assert record["hosts"] == ["h1", "h2"]
    assert executors(record) == {"h1": "h1", "h2": "h2", "h1#2": "h1", "h1#3": "h1"}
    first, second, image = (_spec(run, e, "deploy.json") for e in ("h1", "h1#2", "h1#3"))
    # h1's shell pipelines: one environment, each distinct requirement once, in the order appended
    assert first["commands"] == second["commands"] == ["pip install x", "echo a", "echo b"]
    assert first["env_dir"] == second["env_dir"] and first["environment_variables"] == {"A": "1", "B": "second"}
    assert (first["redeploy"], second["redeploy"]) == (True, False)  # rebuilt once, by the first
    assert image["commands"] == ["echo c"] and image["container"]["image"] == "alpine:3"
    assert _spec(run, "h2", "deploy.json")["commands"] == ["pip install x", "echo a"]
    # tasks keep their own pipeline's variables; the executor answers with its id
    node_specs = {e: _spec(run, e, "node.json") for e in ("h1", "h1#2")}
    assert [s["environment_variables"]["B"] for s in node_specs.values()] == ["first", "second"]
    assert [(s["node"], s["deployment"]) for s in node_specs.values()] == [("h1", "h1"), ("h1", "h1#2")]
    assert node_specs["h1#2"]["flags"]["environment"]["NETUNICORN_EXECUTOR_ID"] == "h1#2"  # Deployment.executor_id
    execute = (run.project / "execute.yml").read_text()
    assert '"h1": ["h1", "h1#2", "h1#3"]' in execute and '"h2": ["h2"]' in execute
    deploy = (run.project / "deploy.yml").read_text()
    assert "#   h1#2: 3 requirement(s)" in deploy and "#   h1#3: 1 requirement(s)" in deploy


def test_results_have_one_entry_per_deployment_and_old_records_read_as_before(tmp_path: Path) -> None:
    run = RunDir(compile_experiment(_experiment(), _inventory(), tmp_path / "run", "several"))
    results = load_results(run.path)
    assert [(r.executor_id, r.node, r.status) for r in results] == [
        ("h1", "h1", "not_run"), ("h2", "h2", "not_run"), ("h1#2", "h1", "not_run"), ("h1#3", "h1", "not_run")]
    entries = results.to_dict()["nodes"]
    assert ["host" in entry for entry in entries] == [False, False, True, True]
    assert results["h1#2"].node == "h1"
    # a record written before a node could run several pipelines names only its hosts
    assert executors({"hosts": ["h1", "h2"]}) == {"h1": "h1", "h2": "h2"}


def test_a_host_named_like_another_nodes_second_pipeline_is_refused(tmp_path: Path) -> None:
    import pytest

    from unicorn_ansible.errors import ExperimentError

    h1, clash = Node("h1", {}), Node("h1#2", {})
    pipeline = Pipeline().then(Needs("a"))
    experiment = Experiment().append(h1, pipeline).append(clash, pipeline).append(h1, pipeline)
    inventory = Inventory(sources=["lab.yml"], hostvars={"h1": {}, "h1#2": {}})
    with pytest.raises(ExperimentError, match="two deployments are named h1#2"):
        compile_experiment(experiment, inventory, tmp_path / "run", "clash")
