"""Execution graphs and CyclePipeline: netunicorn's validation rules on the client, and the
node-side executor walking the graph (counters, weak back-edges, traverse_on, early stopping,
previous_steps by name)."""

from __future__ import annotations

import pytest
from node_results import NodeResults

from unicorn_ansible import (
    CyclePipeline,
    ExecutionGraph,
    Experiment,
    GraphError,
    Node,
    Task,
    TaskDispatcher,
    is_successful,
)
from unicorn_ansible.model.experiment import _dispatched
from unicorn_ansible.node.scheduler import run_pipeline

NODE = Node("n1")


class Step(Task):
    """Returns its value and what it saw in previous_steps (name -> number of Results)."""

    def __init__(self, value, fail=False, name=None):
        super().__init__(name=name)
        self.value = value
        self.fail = fail

    def run(self):
        if self.fail:
            raise RuntimeError(f"{self.value} broke")
        return self.value, {k: len(v) for k, v in self.previous_steps.items()}


class PerNode(TaskDispatcher):
    def dispatch(self, node):
        return Step(f"on {node.name}", name="dispatched")


def execute(pipeline, tmp_path):
    state = run_pipeline(_dispatched(pipeline, NODE), str(tmp_path))
    return state, NodeResults.read(str(tmp_path)).by_name


def test_weak_back_edge_with_counter_runs_the_loop_counter_plus_one_times(tmp_path):
    graph = ExecutionGraph()
    first, second = Step("a", name="a"), Step("b", name="b")
    graph.graph.add_edge("root", first)
    graph.graph.add_edge(first, second)
    graph.graph.add_edge(second, first, type="weak", counter=2)

    state, results = execute(graph, tmp_path)

    assert state["status"] == "finished" and state["shape"] == "graph"
    assert [len(results["a"]), len(results["b"])] == [3, 3]
    # the last b sees every earlier run by name: a three times, b twice
    assert results["b"][-1].unwrap() == ("b", {"a": 3, "b": 2})


def test_cycle_pipeline_repeats_every_stage_and_waits_for_the_whole_stage(tmp_path):
    pipeline = CyclePipeline(cycles=3, tasks=[Step(1, name="one"), [Step(2, name="two"), Step(3, name="three")]])

    state, results = execute(pipeline, tmp_path)

    assert {name: len(runs) for name, runs in results.items()} == {"one": 3, "two": 3, "three": 3}
    # "one" of cycle k starts only after both parallel tasks of cycle k-1 ended
    seen = [r.unwrap()[1] for r in results["one"]]
    assert seen == [{}, {"one": 1, "two": 1, "three": 1}, {"one": 2, "two": 2, "three": 2}]


def test_traverse_on_failure_runs_the_recovery_task_only(tmp_path):
    graph = ExecutionGraph()
    probe, recover, report = Step("probe", fail=True, name="probe"), Step("fix", name="recover"), Step("r", name="report")
    graph.graph.add_edge("root", probe)
    graph.graph.add_edge(probe, recover, traverse_on="failure")
    graph.graph.add_edge(probe, report)  # default: "success" under early stopping

    state, results = execute(graph, tmp_path)

    assert list(results) == ["probe", "recover"]
    assert "probe broke" in results["probe"][0].failure()
    assert state["not_run"] == [] and state["failed"] == 1


def test_early_stopping_stops_the_graph_at_a_failure_without_failure_edges(tmp_path):
    graph = ExecutionGraph()
    probe, after = Step("probe", fail=True, name="probe"), Step("after", name="after")
    graph.graph.add_edge("root", probe)
    graph.graph.add_edge(probe, after)

    state, results = execute(graph, tmp_path)

    assert list(results) == ["probe"] and state["not_run"] == ["after"]
    assert "early stopping" in state["stopped"]


def test_without_early_stopping_edges_are_followed_after_failures_too(tmp_path):
    graph = ExecutionGraph(early_stopping=False)
    probe, after, only_ok = Step("p", fail=True, name="probe"), Step("a", name="after"), Step("x", name="only_ok")
    graph.graph.add_edge("root", probe)
    graph.graph.add_edge(probe, after)
    graph.graph.add_edge(probe, only_ok, traverse_on="success")

    state, results = execute(graph, tmp_path)

    assert list(results) == ["probe", "after"]


def test_task_dispatchers_in_a_graph_are_dispatched_per_node(tmp_path):
    graph = ExecutionGraph()
    graph.graph.add_edge("root", PerNode())
    state, results = execute(graph, tmp_path)
    assert results["dispatched"][0].unwrap()[0] == "on n1"


def test_requirements_of_a_graph_are_collected_in_flow_order():
    graph = ExecutionGraph()
    first, second = Step(1, name="first"), Step(2, name="second")
    first.add_requirement("echo first")
    second.add_requirement("echo second")
    graph.graph.add_edge("root", first)
    graph.graph.add_edge(first, second)
    experiment = Experiment().append(NODE, graph)
    assert experiment[0].environment_definition.commands == ["echo first", "echo second"]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda g, a, b: (g.graph.add_edge("root", a), g.graph.add_edge(a, b), g.graph.add_edge(b, a)),
         "cycle of strong edges (Step(name='a') -> Step(name='b') -> Step(name='a'))"),
        (lambda g, a, b: (g.graph.add_edge("root", a), g.graph.add_edge(a, b, counter=0)),
         "edge (Step(name='a') -> Step(name='b')) has counter 0"),
        (lambda g, a, b: (g.graph.add_edge("root", a), g.graph.add_edge(a, b, traverse_on="sometimes")),
         "traverse_on='sometimes'; use 'success', 'failure' or 'any'"),
        (lambda g, a, b: (g.graph.add_edge("root", "sync", traverse_on="success"), g.graph.add_edge("sync", a)),
         "edge ('root' -> 'sync') has traverse_on='success', but it leaves a synchronisation point"),
        (lambda g, a, b: (g.graph.add_edge("root", a), g.graph.add_node(b)),
         "Step(name='b') cannot be reached from 'root'"),
        (lambda g, a, b: (g.graph.add_edge("root", a), g.graph.add_edge(a, b, type="weak")),
         "without its weak edges, Step(name='b') cannot be reached"),
        (lambda g, a, b: (g.graph.add_edge("root", a, type="loose"),),
         "has type 'loose'; use 'strong' (the default) or 'weak'"),
    ],
)
def test_invalid_graphs_are_refused_at_append_naming_the_edge_or_vertex(build, message):
    graph = ExecutionGraph()
    build(graph, Step(1, name="a"), Step(2, name="b"))
    with pytest.raises(GraphError) as error:
        Experiment().append(NODE, graph)
    assert message in str(error.value)
    assert isinstance(error.value, ValueError)  # as netunicorn's validation raises


def test_cycle_pipeline_rejects_a_bad_cycle_count():
    with pytest.raises(ValueError, match="cycles must be a positive integer"):
        CyclePipeline(cycles=0)


def test_a_cycle_pipeline_without_a_count_repeats_until_the_time_limit(tmp_path):
    pipeline = CyclePipeline(tasks=[Step("tick", name="tick")])
    state = run_pipeline(_dispatched(pipeline, NODE), str(tmp_path), time_limit=1.0)
    runs = NodeResults.read(str(tmp_path)).by_name["tick"]
    assert state["status"] == "timed_out"
    assert len(runs) > 5 and all(r.unwrap()[0] == "tick" for r in runs[:-1])
    # the run under way when the limit came was stopped, and says so
    assert runs[-1].unwrap()[0] == "tick" if is_successful(runs[-1]) else "time limit" in runs[-1].failure()
