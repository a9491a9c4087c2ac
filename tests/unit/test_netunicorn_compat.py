"""netunicorn-base's own objects accepted as ours, and our nodes accepted by netunicorn."""

from __future__ import annotations

import pickle
import subprocess
import sys

import cloudpickle
import pytest
from netunicorn.base import Architecture as NArchitecture
from netunicorn.base import CyclePipeline as NCyclePipeline
from netunicorn.base import DockerImage as NDockerImage
from netunicorn.base import ExecutionGraph as NExecutionGraph
from netunicorn.base import Experiment as NExperiment
from netunicorn.base import FlagValues as NFlagValues
from netunicorn.base import Pipeline as NPipeline
from netunicorn.base import ShellExecution as NShellExecution
from netunicorn.base.nodes import Node as NNode
from netunicorn.library.tasks.basic import ShellCommand, SleepTask
from netunicorn.library.tasks.capture.tcpdump import StartCapture
from netunicorn.library.tasks.flags import GetFlagTask
from netunicorn.library.tasks.measurements.ping import Ping

from unicorn_ansible import (
    Architecture,
    CountableNodePool,
    DockerImage,
    ExecutionGraph,
    Experiment,
    Node,
    Pipeline,
    RuntimeContext,
    ShellExecution,
    Task,
    TaskDispatcher,
    add_artifact,
)
from unicorn_ansible.compat.netunicorn import as_experiment, as_flow, runtime_requirements
from unicorn_ansible.model.graph import GraphPlan


def linux(name: str = "h1") -> Node:
    return Node(name, {"ansible_host": "127.0.0.1"}, Architecture.LINUX_AMD64)


def test_our_nodes_are_netunicorn_nodes_with_netunicorn_architecture():
    node = linux()
    assert isinstance(node, NNode)
    assert Architecture is NArchitecture
    assert node.available_environments  # netunicorn's Deployment checks it


def test_a_node_is_not_iterable():
    with pytest.raises(TypeError, match="not iterable"):
        list(linux())
    with pytest.raises(TypeError):
        iter(linux())


def test_netunicorn_experiment_takes_our_pool_nodes_and_dispatches_library_tasks():
    pool = CountableNodePool([linux("h1"), linux("h2")])
    experiment = NExperiment().map(NPipeline().then(Ping("127.0.0.1", count=1)), pool.take(2))
    assert [d.node.name for d in experiment] == ["h1", "h2"]
    with pytest.raises(TypeError, match="got Nodes instead"):  # netunicorn's own rule holds for our pools
        NExperiment().map(NPipeline(), pool)


def test_netunicorn_tasks_and_dispatchers_go_into_our_pipeline():
    assert isinstance(SleepTask(1), Task)
    experiment = Experiment().append(linux(), Pipeline().then(Ping("127.0.0.1", count=1)).then(SleepTask(0)))
    stages = cloudpickle.loads(experiment[0].pipeline).tasks
    assert type(stages[0][0]).__name__ == "PingLinuxImplementation"
    assert "sudo apt-get install -y iputils-ping" in experiment[0].environment_definition.commands


def test_a_library_capture_at_a_fixed_path_is_declared_without_changing_the_task():
    """netunicorn-library's StartCapture is a dispatcher without add_artifact: add_artifact(...) declares its file,
    on a netunicorn Pipeline and Experiment as on ours, and the dispatched task of every node carries it."""
    capture = add_artifact(StartCapture("/tmp/cap.pcap", ["-i", "lo"], name="capture"), "/tmp/cap.pcap")
    experiment = as_experiment(NExperiment().map(NPipeline().then(capture).then(SleepTask(0)), [linux("h1"), linux("h2")]))
    for deployment in experiment:
        assert deployment.artifacts == [{"task": "capture", "pattern": "/tmp/cap.pcap"}]
    assert capture.artifacts == ["/tmp/cap.pcap"]  # dispatching twice did not add it twice
    fresh = add_artifact(StartCapture("/tmp/b.pcap", ["-i", "lo"], name="b"), "/tmp/b.pcap")
    for copied in (pickle.loads(pickle.dumps(fresh)), cloudpickle.loads(cloudpickle.dumps(fresh))):
        task = copied.dispatch(linux())  # pickled, it still hands its files on
        assert type(task).__name__ == "StartCaptureLinuxImplementation" and task.artifacts == ["/tmp/b.pcap"]


def test_our_dispatchers_declare_artifacts_for_the_task_they_give_in_pipelines_and_graphs():
    class Writes(Task):
        artifacts = ["/tmp/own.log"]

        def run(self):
            return None

    class PerNode(TaskDispatcher):
        def dispatch(self, node):
            return Writes(name=f"writes-{node.name}")

    dispatcher = PerNode().add_artifact("/tmp/{a,b}.pcap").add_artifact("~/results/*.csv")
    graph = ExecutionGraph()
    graph.graph.add_edge("root", dispatcher)
    for flow in (Pipeline().then(dispatcher), graph):
        (deployment,) = Experiment().append(linux("n7"), flow)
        assert deployment.artifacts == [{"task": "writes-n7", "pattern": p}
                                        for p in ("/tmp/own.log", "/tmp/{a,b}.pcap", "~/results/*.csv")]
    assert Writes.artifacts == ["/tmp/own.log"]  # the class's list is not changed


def test_netunicorn_pipeline_becomes_our_graph_with_the_same_vertices_and_a_container_it_may_do_without():
    pipeline = NPipeline().then(SleepTask(1)).then([ShellCommand(["true"]), ShellCommand(["false"])])
    graph = as_flow(pipeline)
    assert isinstance(graph, ExecutionGraph) and graph.name == pipeline.name
    assert set(graph.graph.nodes) == set(pipeline.graph.nodes)
    deployment = Experiment().append(linux(), pipeline)[0]
    # netunicorn's default DockerImage(): a container built from the requirements where the host can,
    # else ShellExecution with a notice from the host (the user did not ask for a container)
    environment = deployment.environment_definition
    assert isinstance(environment, DockerImage) and environment.image is None and environment.shell_fallback
    plan = cloudpickle.loads(deployment.pipeline)
    assert isinstance(plan, GraphPlan) and sum(hasattr(v, "run") for v in plan.vertices) == 3


def test_a_named_netunicorn_image_is_a_docker_image_that_may_not_fall_back():
    environment = NDockerImage(image="lab/probe:1")
    environment.runtime_context.ports_mapping[80] = 8080
    environment.runtime_context.environment_variables["MODE"] = "fast"
    ours = Experiment().append(linux(), NPipeline(environment_definition=environment).then(SleepTask(0)))[0]
    assert ours.environment_definition.image == "lab/probe:1" and not ours.environment_definition.shell_fallback
    assert ours.environment_definition.runtime_context == RuntimeContext({80: 8080}, {"MODE": "fast"}, None, [])


def test_shell_execution_keeps_commands_and_variables():
    environment = NShellExecution(commands=["echo prepared"])
    environment.runtime_context.environment_variables["MODE"] = "fast"
    deployment = Experiment().append(linux(), NPipeline(environment_definition=environment).then(SleepTask(0)))[0]
    assert type(deployment.environment_definition) is ShellExecution
    assert deployment.environment_definition.commands[0] == "echo prepared"
    assert deployment.environment_definition.runtime_context.environment_variables == {"MODE": "fast"}


def test_netunicorn_experiment_becomes_ours_with_context():
    experiment = NExperiment(deployment_context={"ssh": {"user": "x"}})
    experiment.append(linux("h1"), NCyclePipeline(cycles=3).then(SleepTask(0)))
    ours = as_experiment(experiment)
    assert isinstance(ours, Experiment) and ours.deployment_context == {"ssh": {"user": "x"}}
    assert ours[0].node.name == "h1"


def test_hand_made_netunicorn_node_and_graph_accepted():
    graph = NExecutionGraph()
    task = SleepTask(0)
    graph.graph.add_edge("root", task)
    deployment = Experiment().append(NNode("h9", {}), graph)[0]
    assert isinstance(deployment.node, Node) and deployment.node.name == "h9"


def test_netunicorn_code_travels_by_value(tmp_path):
    """A host without netunicorn loads and runs the pipeline of a netunicorn-library task."""
    (tmp_path / "p.pkl").write_bytes(Experiment().append(linux(), Pipeline().then(SleepTask(0)))[0].pipeline)
    code = ("import sys, cloudpickle; sys.modules['netunicorn'] = None; "
            f"p = cloudpickle.loads(open({str(tmp_path / 'p.pkl')!r}, 'rb').read()); print(p.tasks[0][0].run())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr


def test_runtime_requirements_name_what_netunicorns_executor_would_have():
    assert Experiment().append(linux(), Pipeline().then(SleepTask(0)))[0].environment_definition.commands == []
    assert runtime_requirements([SleepTask(0)]) == []
    commands = Experiment().append(linux(), Pipeline().then(GetFlagTask("f")))[0].environment_definition.commands
    assert commands == runtime_requirements([GetFlagTask("f")])
    assert [c.split("'")[1] for c in commands] == ["import pydantic", "import requests"]
    assert all("failed: install" in c for c in commands)


def test_flag_values_travel_and_validate():
    value = pickle.loads(pickle.dumps(NFlagValues(int_value=3)))
    assert value.int_value == 3


@pytest.mark.parametrize("values", [
    {"int_value": "3"}, {"int_value": 3.0}, {"int_value": True}, {"int_value": 3.5}, {"int_value": "x"},
    {"int_value": None}, {"text_value": 5}, {"text_value": "a", "int_value": -2},
])
def test_flag_values_validate_and_coerce_as_netunicorns(values):
    from unicorn_ansible import FlagValues

    def outcome(cls):
        try:
            made = cls(**values)
        except ValueError:
            return "ValueError"
        return made.text_value, made.int_value

    assert outcome(FlagValues) == outcome(NFlagValues)


def test_draw_pipelines_and_graphs(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unicorn_ansible import CyclePipeline

    graph = ExecutionGraph()
    graph.graph.add_edge("root", SleepTask(0), counter=2)
    for number, flow in enumerate([Pipeline().then(SleepTask(0)).then([SleepTask(1), SleepTask(2)]),
                                   CyclePipeline(3).then(SleepTask(0)), graph]):
        plt.figure()
        flow.draw()
        plt.savefig(tmp_path / f"{number}.png")
        assert (tmp_path / f"{number}.png").stat().st_size > 1000
    assert sorted(map(str, Pipeline().then(SleepTask(0)).networkx_graph().nodes))[0] == "1"


def test_unknown_architecture_is_learned_once_when_read():
    asked = []

    def learn(name):
        asked.append(name)
        return Architecture.LINUX_ARM64

    node = Node("h1", {})
    node.learn_architecture_with(learn)
    assert node.architecture is Architecture.LINUX_ARM64 and node.architecture is Architecture.LINUX_ARM64
    assert asked == ["h1"]
    copy = pickle.loads(pickle.dumps(node))  # the learner stays behind
    assert copy.architecture is Architecture.LINUX_ARM64 and "_learn_architecture" not in copy.__dict__


def _shape(graph):
    """A graph's edges with tasks named: comparable between our objects and netunicorn's."""
    label = lambda v: getattr(v, "name", v)  # noqa: E731
    return sorted((str(label(u)), str(label(v)), sorted(d.items())) for u, v, d in graph.edges(data=True))


def test_pipeline_is_an_execution_graph_built_as_netunicorns():
    from unicorn_ansible import CyclePipeline

    a, b, c = SleepTask(0, name="a"), SleepTask(0, name="b"), SleepTask(0, name="c")
    ours = Pipeline().then(a).then([b, c])
    theirs = NPipeline().then(a).then([b, c])
    assert isinstance(ours, ExecutionGraph) and ExecutionGraph.is_execution_graph_valid(ours)
    assert _shape(ours.graph) == _shape(theirs.graph) and ours.last_stage == theirs.last_stage == 2
    copied = ours.copy()
    assert _shape(copied.graph) == _shape(ours.graph) and copied.tasks == ours.tasks and copied.name != ours.name
    ours_cycle = CyclePipeline(cycles=3).then(a).then(b)
    theirs_cycle = NCyclePipeline(cycles=3).then(a).then(b)
    assert _shape(ours_cycle.graph) == _shape(theirs_cycle.graph)


def test_a_pipeline_whose_graph_was_changed_runs_as_that_graph():
    a, b, c = SleepTask(0, name="a"), SleepTask(0, name="b"), SleepTask(0, name="c")
    pipeline = Pipeline().then(a).then(b)
    assert isinstance(cloudpickle.loads(Experiment().append(linux(), pipeline)[0].pipeline), Pipeline)
    pipeline.graph.add_edge(a, c)
    plan = cloudpickle.loads(Experiment().append(linux(), pipeline)[0].pipeline)
    assert isinstance(plan, GraphPlan) and {getattr(v, "name", v) for v in plan.vertices} >= {"a", "b", "c"}
