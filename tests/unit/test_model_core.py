"""The client-side model: Task, TaskDispatcher, Pipeline, Node pools, Experiment, Deployment."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import cloudpickle
import pytest
import returns.pipeline
import returns.result

import unicorn_ansible
from unicorn_ansible import (
    Architecture,
    CountableNodePool,
    DockerImage,
    Experiment,
    ExperimentError,
    Node,
    Pipeline,
    RuntimeContext,
    ShellExecution,
    Task,
    TaskDispatcher,
)


class Req(Task):
    requirements = ["echo class"]

    def run(self):
        return 1


class NoSuper(Task):
    def __init__(self, value):
        self.value = value  # never calls super().__init__()

    def run(self):
        return self.value


class ByArchitecture(TaskDispatcher):
    def dispatch(self, node: Node) -> Task:
        return Req(name=f"for-{node.name}").add_requirement(f"echo {node.architecture.value}")


def test_requirements_are_per_instance_and_names_default_to_uuids() -> None:
    first, second = Req(), Req(name="named")
    assert first.add_requirement("echo extra") is first
    assert first.requirements == ["echo class", "echo extra"]
    assert second.requirements == ["echo class"] and Req.requirements == ["echo class"]
    uuid.UUID(first.name)
    assert second.name == "named"
    orphan = NoSuper(3)
    uuid.UUID(orphan.name)
    assert orphan.add_requirement("x").requirements == ["x"]


def test_task_and_dispatcher_are_abstract() -> None:
    class Incomplete(Task):
        pass

    with pytest.raises(TypeError):
        Incomplete()
    with pytest.raises(TypeError):
        TaskDispatcher()


def test_results_are_the_returns_library_objects() -> None:
    assert unicorn_ansible.Success is returns.result.Success
    assert unicorn_ansible.Failure is returns.result.Failure
    assert unicorn_ansible.Result is returns.result.Result
    assert unicorn_ansible.is_successful is returns.pipeline.is_successful


def test_pipeline_stages() -> None:
    a, b, c, d = Req(name="a"), Req(name="b"), Req(name="c"), Req(name="d")
    pipeline = Pipeline([a, (b, c)]).then({d})
    assert pipeline.early_stopping is True
    assert pipeline.tasks == [[a], [b, c], [d]]
    assert str(pipeline) == f"Pipeline({pipeline.name}): {pipeline.tasks}"
    assert isinstance(pipeline.environment_definition, ShellExecution)
    # as netunicorn's: an empty stage is accepted, a stage after it cannot be reached
    assert Pipeline().then([]).tasks == []
    unreachable = Pipeline().then([]).then(a)
    with pytest.raises(ValueError, match="cannot be reached"):
        Experiment().append(Node("n1", {}), unreachable)


def test_a_pipelines_graph_is_its_stages_until_changed_by_hand() -> None:
    a, b, c, d = Req(name="a"), Req(name="b"), Req(name="c"), Req(name="d")
    pipeline = Pipeline([a, (b, c)])
    assert set(pipeline.graph.edges) == {("root", a), (a, 1), (1, b), (1, c), (b, 2), (c, 2)}
    pipeline.then(d)  # a stage added after the graph was asked for joins it
    assert {(2, d), (d, 3)} <= set(pipeline.graph.edges) and pipeline.runs_by_stages()
    pipeline.graph.add_edge(d, a, type="weak")
    assert not pipeline.runs_by_stages()
    assert pipeline.copy().graph.has_edge(d, a) and not Pipeline([a]).copy().graph.has_edge(d, a)
    # a pipeline pickled before the graph was made when first asked for keeps the graph it had
    old = Pipeline([a])
    old.__dict__["graph"] = old.__dict__.pop("_graph") or old.stage_graph()
    old.__dict__["graph"].add_edge(a, "root", type="weak")
    assert old.graph.has_edge(a, "root") and not old.runs_by_stages()


def test_a_plain_pipeline_is_dispatched_and_shipped_without_networkx() -> None:
    """networkx takes ~0.16 s to import: a run of plain pipelines (the common case) does without it."""
    code = ("import sys\n"
            "from unicorn_ansible import Experiment, Node, Pipeline, Task\n"
            "class Hello(Task):\n"
            "    def run(self):\n"
            "        return 'hello'\n"
            "Experiment().append(Node('n', {}), Pipeline([Hello(), [Hello(), Hello()]]))\n"
            "print('networkx' in sys.modules)\n")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


def test_nodes_and_pools() -> None:
    assert [a.value for a in Architecture] == ["linux/amd64", "linux/arm64", "win/amd64", "win/arm64", "unknown"]
    n1 = Node("n1", {"groups": ["clients"], "ip": "10.0.0.1"}, Architecture.LINUX_AMD64)
    n2 = Node("n2", {"groups": ["servers"]})
    n3 = Node("n3", {"groups": ["clients"]})
    assert n1["ip"] == "10.0.0.1" and n1["missing"] is None and str(n1) == "n1"
    pool = CountableNodePool([n1, CountableNodePool([n2, n3])])
    assert len(pool) == 2 and pool.flatten() == [n1, n2, n3]
    clients = pool.filter(lambda node: "clients" in node["groups"])
    assert clients.flatten() == [n1, n3]
    assert pool.take(2) == [n1, n2]
    assert pool.skip(1).flatten() == [n2, n3]
    assert pool.set_property("lab", "x") is pool and n3["lab"] == "x"
    assert list(iter(pool))[0] is n1


def test_experiment_dispatches_at_append_and_collects_requirements_in_order() -> None:
    linux = Node("linux", {}, Architecture.LINUX_AMD64)
    arm = Node("arm", {}, Architecture.LINUX_ARM64)
    environment = ShellExecution(commands=["echo pipeline-level"],
                                 runtime_context=RuntimeContext(environment_variables={"A": "1"}))
    pipeline = Pipeline(environment_definition=environment).then(Req(name="one")).then(
        [ByArchitecture(), Req(name="two")])
    experiment = Experiment().append(linux, pipeline)
    assert experiment.map(pipeline, [arm]) is experiment
    assert len(experiment) == 2 and [d.node.name for d in experiment] == ["linux", "arm"]
    linux_deployment = experiment.deployment_map[0]
    assert linux_deployment.environment_definition.commands == [
        "echo pipeline-level", "echo class", "echo class", "echo linux/amd64", "echo class"]
    assert linux_deployment.environment_definition.runtime_context.environment_variables == {"A": "1"}
    assert linux_deployment.prepared is False and linux_deployment.error is None
    loaded = cloudpickle.loads(linux_deployment.pipeline)
    assert [t.name for t in loaded.tasks[1]] == ["for-linux", "two"]
    assert environment.commands == ["echo pipeline-level"]  # the pipeline's own definition is untouched
    merged = experiment + Experiment().append(Node("third", {}), pipeline)
    assert [d.node.name for d in merged] == ["linux", "arm", "third"]
    # a node in both gets both pipelines, as netunicorn's Experiment does: its second is linux#2
    both = experiment + Experiment().append(Node("linux", {}), pipeline)
    assert [(d.node.name, d.executor_id) for d in both] == [("linux", "linux"), ("arm", "arm"), ("linux", "linux#2")]
    assert [d.executor_id for d in experiment] == ["linux", "arm"]  # the operands keep their ids


def test_a_node_may_run_several_pipelines_each_its_own_executor() -> None:
    h1, h2 = Node("h1", {}), Node("h2", {})
    first, second = Pipeline().then(Req(name="one")), Pipeline().then(Req(name="two"))
    experiment = Experiment().append(h1, first).append(h2, first).append(h1, second).append(h1, first)
    assert [d.executor_id for d in experiment] == ["h1", "h2", "h1#2", "h1#3"]
    assert [d.node.name for d in experiment] == ["h1", "h2", "h1", "h1"]
    assert [t.name for t in cloudpickle.loads(experiment[2].pipeline).tasks[0]] == ["two"]
    assert "executor=h1#2" in str(experiment[2]) and "executor" not in str(experiment[0])


def test_dispatch_errors_are_refused_with_the_node_named() -> None:
    class Broken(TaskDispatcher):
        def dispatch(self, node):
            raise KeyError("ipv4")

    class NotATask(TaskDispatcher):
        def dispatch(self, node):
            return 42

    with pytest.raises(ExperimentError, match="node n9.*KeyError"):
        Experiment().append(Node("n9", {}), Pipeline().then(Broken()))
    with pytest.raises(ExperimentError, match="must return a Task"):
        Experiment().append(Node("n9", {}), Pipeline().then(NotATask()))
    with pytest.raises(ExperimentError, match="ShellExecution and DockerImage"):
        Experiment().append(Node("n9", {}), Pipeline(environment_definition=object()).then(Req()))


def test_a_docker_image_collects_the_requirements_like_shell_execution() -> None:
    image = DockerImage(base_image="base:1", runtime_context=RuntimeContext({80: 8080}, {"A": "1"}, None, ["--init"]))
    deployment = Experiment().append(Node("n9", {}), Pipeline(environment_definition=image).then(Req()))[0]
    environment = deployment.environment_definition
    assert isinstance(environment, DockerImage) and environment.commands == Req.requirements
    assert environment.base_image == "base:1" and environment.runtime_context.ports_mapping == {80: 8080}


def test_a_pickled_pipeline_loads_where_only_cloudpickle_and_returns_exist(tmp_path: Path) -> None:
    """Hosts have no unicorn_ansible: the model's classes travel inside the pickle."""
    from unicorn_ansible.compiler.bundle import build_bundle

    class Greets(Task):
        def run(self):
            return "hello from a host"

    blob = tmp_path / "pipeline.pkl"
    blob.write_bytes(Experiment().append(Node("h", {}), Pipeline().then(Greets(name="g"))).deployment_map[0].pipeline)
    bundle = build_bundle(tmp_path / "bundles")
    code = (f"import sys; sys.path.insert(0, {str(bundle)!r}); import cloudpickle; "
            f"p = cloudpickle.loads(open({str(blob)!r}, 'rb').read()); "
            "print(p.tasks[0][0].run(), 'unicorn_ansible' in sys.modules)")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello from a host False"
