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
from netunicorn.base.nodes import Nodes as NNodes
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
from unicorn_ansible.compat.netunicorn import as_experiment, as_flow, for_netunicorn, runtime_requirements
from unicorn_ansible.model.graph import GraphPlan


def linux(name: str = "h1") -> Node:
    return Node(name, {"ansible_host": "127.0.0.1"}, Architecture.LINUX_AMD64)


def handed_out(*names: str) -> CountableNodePool:
    """A pool of ours as the client and the command line hand it to netunicorn's code."""
    return for_netunicorn(CountableNodePool([linux(name) for name in names]))


def test_our_nodes_stay_ours_and_meet_netunicorns_checks():
    node = linux()
    assert type(node) is Node and not isinstance(node, NNode) and Architecture is not NArchitecture
    # netunicorn-library's dispatchers compare with netunicorn's Architecture; its Deployment checks environments
    assert node.architecture == NArchitecture.LINUX_AMD64 and node.architecture in {NArchitecture.LINUX_AMD64}
    assert NArchitecture.LINUX_ARM64 != node.architecture and Architecture(NArchitecture.LINUX_ARM64) is Architecture.LINUX_ARM64
    assert {NShellExecution, NDockerImage, ShellExecution, DockerImage} <= node.available_environments
    assert NDockerImage not in Node("h2", {"netunicorn-environments": ["ShellExecution"]}).available_environments
    (handed,) = handed_out("h1").take(1)
    assert isinstance(handed, NNode) and isinstance(handed, Node) and handed == node
    assert handed.architecture == NArchitecture.LINUX_AMD64 and handed.__json__()["architecture"] == "linux/amd64"
    # netunicorn's JSON of our pool is netunicorn's own (its deserializer reads it)
    theirs = NNodes.dispatch_and_deserialize(handed_out("h1", "h2").__json__())
    assert [node.name for node in theirs.take(2)] == ["h1", "h2"] and type(theirs).__module__ == "netunicorn.base.nodes"


def test_a_node_is_not_iterable():
    with pytest.raises(TypeError, match="not iterable"):
        list(linux())
    with pytest.raises(TypeError):
        iter(linux())


def test_netunicorn_experiment_takes_our_pool_nodes_and_dispatches_library_tasks():
    pool = handed_out("h1", "h2")
    experiment = NExperiment().map(NPipeline().then(Ping("127.0.0.1", count=1)), pool.take(2))
    assert [d.node.name for d in experiment] == ["h1", "h2"]
    with pytest.raises(TypeError, match="got Nodes instead"):  # netunicorn's own rule holds for our pools
        NExperiment().map(NPipeline(), pool)
    with pytest.raises(TypeError, match="got Nodes instead"):
        NExperiment().map(NPipeline(), pool.filter(lambda node: True))
    # netunicorn's append checks no type: any node of ours, its dispatchers reading our architecture
    appended = NExperiment().append(linux("h3"), NPipeline().then(Ping("127.0.0.1", count=1)))[0]
    assert "PingLinuxImplementation" in {type(v).__name__ for v in cloudpickle.loads(appended.execution_graph).graph}
    ours = as_experiment(experiment)  # back among ours: plain nodes, nothing of netunicorn's kept
    assert [(type(d.node), d.node.name, d.node.architecture) for d in ours] == [
        (Node, "h1", Architecture.LINUX_AMD64), (Node, "h2", Architecture.LINUX_AMD64)]
    assert b"netunicorn.base.nodes" not in pickle.dumps(ours[0].node)


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
    experiment = as_experiment(NExperiment().map(NPipeline().then(capture).then(SleepTask(0)), handed_out("h1", "h2").take(2)))
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


_SAME_CLASSES = r'''
import importlib.abc, json, sys


class Hidden(importlib.abc.MetaPathFinder):
    """netunicorn as if it were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "netunicorn" or name.startswith("netunicorn."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


hidden = Hidden()
if sys.argv[1] == "hidden":
    sys.meta_path.insert(0, hidden)
import unicorn_ansible as ua
from unicorn_ansible.compat.netunicorn import as_experiment, for_netunicorn

PUBLIC = ("Node", "Architecture", "Task", "TaskDispatcher", "Pipeline", "ExecutionGraph", "Experiment",
          "CountableNodePool", "ExperimentStatus", "DockerImage")


def shape():
    classes = {name: getattr(ua, name) for name in PUBLIC}
    return {"ids": {name: id(cls) for name, cls in classes.items()},
            "mro": {name: [f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__] for name, cls in classes.items()},
            "members": {name: [(m.name, m.value) for m in cls] for name, cls in classes.items() if name in ("Architecture", "ExperimentStatus")},
            "node": sorted(vars(ua.Node("n", {}, ua.Architecture.LINUX_AMD64)))}


class Hello(ua.Task):
    def run(self):
        return "hello"


before = shape()
pool = for_netunicorn(ua.CountableNodePool([ua.Node("h1", {}, ua.Architecture.LINUX_AMD64)]))
plain = ua.Experiment().map(ua.Pipeline().then(Hello(name="hello")), pool)
assert "netunicorn.base" not in sys.modules and type(pool) is ua.CountableNodePool
if hidden in sys.meta_path:
    sys.meta_path.remove(hidden)  # installed now, in the same process
from netunicorn.base import Experiment as NExperiment, Pipeline as NPipeline
from netunicorn.library.tasks.measurements.ping import Ping

handed = for_netunicorn(ua.CountableNodePool([ua.Node("h1", {}, ua.Architecture.LINUX_AMD64)]))
theirs = as_experiment(NExperiment().map(NPipeline().then(Ping("127.0.0.1", count=1)), handed.take(1)))
ours = ua.Experiment().append(ua.Node("h2", {}, ua.Architecture.LINUX_ARM64), NPipeline().then(Ping("127.0.0.1", count=1)))
assert shape() == before, (shape(), before)
before.pop("ids")
print(json.dumps(before, sort_keys=True))
'''


def test_the_model_is_the_same_with_netunicorn_absent_or_present_in_one_process():
    """No class of ours changes with netunicorn: imported where netunicorn is missing, then used with
    netunicorn in the same process, or imported beside it from the start, the classes are the same."""
    shapes = []
    for mode in ("hidden", "installed"):
        done = subprocess.run([sys.executable, "-c", _SAME_CLASSES, mode], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        shapes.append(done.stdout)
    assert shapes[0] == shapes[1]
    assert "netunicorn" not in shapes[0]  # no class of netunicorn's among ours
