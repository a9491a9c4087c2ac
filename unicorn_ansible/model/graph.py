"""Execution graphs, with netunicorn's rules (Pipeline and CyclePipeline are graphs too: pipeline.py).

An :class:`ExecutionGraph` is a networkx ``DiGraph`` whose vertices are Tasks,
TaskDispatchers or synchronisation points (any other hashable value; ``"root"``
is always there). Hosts have no networkx: what a node runs is a :class:`GraphPlan`,
plain lists of vertices and edges, built on the client after validation.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from .environment import EnvironmentDefinition, ShellExecution
from .task import Task, TaskDispatcher

if TYPE_CHECKING:  # networkx ships no hints; named for the reader, imported only where a graph is made
    from networkx import DiGraph


class Flow:
    """What every pipeline and execution graph has: a name, early stopping, whether results
    are reported, and the environment its tasks' requirements run in (ShellExecution by default)."""

    def __init__(
        self,
        early_stopping: bool = True,
        report_results: bool = True,
        environment_definition: EnvironmentDefinition | None = None,
        name: str | None = None,
    ) -> None:
        self.name: str = name or str(uuid.uuid4())
        self.early_stopping = early_stopping
        self.report_results = report_results
        self.environment_definition: EnvironmentDefinition = (
            environment_definition if environment_definition is not None else ShellExecution()
        )
        #: paths or glob patterns of files the whole pipeline leaves (see Task.artifacts)
        self.artifacts: list[str] = []

    def networkx_graph(self) -> DiGraph:
        """The flow as netunicorn draws it: a networkx DiGraph from 'root'."""
        raise NotImplementedError

    def draw(self, nx_layout_function: Callable[..., object] | None = None) -> None:
        """Draw the flow with networkx and matplotlib (``pip install 'unicorn-ansible[draw]'``),
        as netunicorn draws it: vertices labelled with task names, edges with their attributes."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ImportError("draw() needs matplotlib: pip install 'unicorn-ansible[draw]'") from None
        import networkx as nx

        graph = self.networkx_graph()
        labels = {v: getattr(v, "name", v) for v in graph.nodes}
        edge_labels = {(u, v): ", ".join(f"'{k}': {x}" for k, x in d.items() if x is not None)
                       for u, v, d in graph.edges(data=True)}
        layout = (nx_layout_function or nx.shell_layout)(graph)
        nx.draw(graph, layout)
        nx.draw_networkx_labels(graph, layout, labels=labels)
        nx.draw_networkx_edge_labels(graph, layout, edge_labels={k: f"{{{v}}}" if v else "" for k, v in edge_labels.items()})


EDGE_TYPES = ("strong", "weak")
TRAVERSE_ON = ("success", "failure", "any")


def _label(vertex: object) -> str:
    """How a vertex is named in messages: a task by its class and name, a point by its value."""
    if isinstance(vertex, (Task, TaskDispatcher)):
        return f"{type(vertex).__name__}(name={vertex.name!r})"
    return repr(vertex)


def _check_edge(u: object, v: object, data: dict[str, object]) -> None:
    """An edge's attributes follow the rules: its type, its counter, its traverse_on (only leaving a task)."""
    edge = f"edge ({_label(u)} -> {_label(v)})"
    kind = data.get("type", "strong")
    if kind not in EDGE_TYPES:
        raise ValueError(f"{edge} has type {kind!r}; use 'strong' (the default) or 'weak'")
    if "counter" in data:
        counter = data["counter"]
        if isinstance(counter, bool) or not isinstance(counter, int) or counter <= 0:
            raise ValueError(f"{edge} has counter {counter!r}; it must be a positive integer")
    if "traverse_on" in data:
        if not isinstance(u, (Task, TaskDispatcher)):
            raise ValueError(
                f"{edge} has traverse_on={data['traverse_on']!r}, but it leaves a synchronisation point; "
                "only edges leaving a task may say when to traverse them"
            )
        if data["traverse_on"] not in TRAVERSE_ON:
            raise ValueError(f"{edge} has traverse_on={data['traverse_on']!r}; use 'success', 'failure' or 'any'")


def _check_strong_edges(name: str | None, graph: DiGraph) -> None:
    """The strong edges alone make no cycle (it would wait on itself) and reach every vertex from 'root'."""
    import networkx as nx

    strong = nx.DiGraph()
    strong.add_nodes_from(graph.nodes)
    strong.add_edges_from((u, v) for u, v, d in graph.edges(data=True) if d.get("type", "strong") != "weak")
    cycle = None if nx.is_directed_acyclic_graph(strong) else nx.find_cycle(strong)
    if cycle:
        path = " -> ".join(_label(u) for u, _ in cycle) + f" -> {_label(cycle[0][0])}"
        raise ValueError(
            f"execution graph {name} has a cycle of strong edges ({path}); a cycle would wait on "
            "itself forever: make one of its edges type='weak'"
        )
    unreachable = _unreachable(strong)
    if unreachable:
        raise ValueError(
            f"execution graph {name}: without its weak edges, {', '.join(_label(v) for v in unreachable)} "
            "cannot be reached from 'root'; reach it through a strong edge too"
        )


def _unreachable(graph: DiGraph) -> list[Hashable]:
    """The vertices of a networkx DiGraph that no path from 'root' reaches."""
    import networkx as nx

    reachable = set(nx.descendants(graph, "root")) | {"root"}
    return [v for v in graph.nodes if v not in reachable]


class ExecutionGraph(Flow):
    """
    ExecutionGraph is a directed graph of tasks; ``self.graph`` is a networkx ``DiGraph``.
    Its rules are netunicorn's:

    1. The graph starts at the vertex ``"root"`` (added when the graph is created).
    2. A TaskDispatcher vertex is dispatched to a Task for each node; Task vertices run;
       any other vertex is a synchronisation point.
    3. The graph is weakly connected and every vertex is reachable from ``"root"``.
    4. An edge is ``type="strong"`` (the default: a prerequisite and the flow) or
       ``type="weak"`` (the flow only). Without its weak edges the graph must be acyclic and
       still reach every vertex from ``"root"``: cycles go through weak edges.
    5. ``counter=N`` (a positive integer) on an edge: it is traversed N times at most;
       without it, without limit.
    6. ``traverse_on="success" | "failure" | "any"`` on an edge leaving a task: followed
       only after that outcome of the task. Without it, edges follow ``early_stopping``:
       ``True`` treats them as "success" (a failed task stops the graph unless one of its
       edges says "failure" or "any"), ``False`` as "any". Edges leaving synchronisation
       points take no ``traverse_on``.

    Results of a graph are netunicorn's shape: task name -> list of Results (a task in a
    cycle runs several times).
    """

    def __init__(
        self,
        early_stopping: bool = True,
        report_results: bool = True,
        environment_definition: EnvironmentDefinition | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(early_stopping, report_results, environment_definition, name)
        self.graph: DiGraph = self._new_graph()  # a Pipeline's is made when first asked for
        self.override_graph_validation = False

    def _new_graph(self) -> DiGraph | None:
        """The graph a new flow starts with: only 'root'."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_node("root")
        return graph

    @staticmethod
    def is_execution_graph_valid(obj: ExecutionGraph) -> bool:
        """True if ``obj`` follows the rules above; otherwise ValueError naming the vertex or edge."""
        import networkx as nx

        if not isinstance(obj, ExecutionGraph):
            raise ValueError(f"expected an ExecutionGraph, got {type(obj).__name__}")
        if obj.override_graph_validation:
            return True
        graph = obj.graph
        if not isinstance(graph, nx.DiGraph) or isinstance(graph, nx.MultiDiGraph):
            raise ValueError(f"execution graph {obj.name}: .graph must be a networkx DiGraph")
        if not graph.has_node("root"):
            raise ValueError(f"execution graph {obj.name} has no 'root' vertex; every graph starts at 'root'")
        for u, v, data in graph.edges(data=True):
            _check_edge(u, v, data)
        unreachable = _unreachable(graph)
        if unreachable:
            raise ValueError(
                f"execution graph {obj.name}: {', '.join(_label(v) for v in unreachable)} cannot be reached "
                "from 'root'; add an edge leading to it"
            )
        _check_strong_edges(obj.name, graph)
        return True

    def __copy__(self) -> ExecutionGraph:
        graph = ExecutionGraph(self.early_stopping, self.report_results, self.environment_definition)
        graph.graph = self.graph.copy()
        graph.override_graph_validation = self.override_graph_validation
        return graph

    def copy(self) -> ExecutionGraph:
        return self.__copy__()

    def networkx_graph(self) -> DiGraph:
        return self.graph

    def __str__(self) -> str:
        return f"ExecutionGraph(name={self.name}, {self.graph})"

    def __repr__(self) -> str:
        return str(self)

    def __hash__(self) -> int:
        return hash(self.name)

    # -- what a node runs ------------------------------------------------------
    def elements(self) -> list[Hashable]:
        """Every vertex, in the order the flow first reaches it from 'root' (requirements' order)."""
        order: list[Hashable] = []
        seen: set[Hashable] = {"root"}
        queue: deque[Hashable] = deque(["root"])
        while queue:
            vertex = queue.popleft()
            order.append(vertex)
            for successor in self.graph.successors(vertex):
                if successor not in seen:
                    seen.add(successor)
                    queue.append(successor)
        order.extend(v for v in self.graph.nodes if v not in seen)
        return order

    def plan(self, dispatched: dict[int, Task]) -> GraphPlan:
        """The graph as plain lists, TaskDispatchers replaced by ``dispatched[id(dispatcher)]``."""
        vertices = self.elements()
        index = {id(v) if isinstance(v, (Task, TaskDispatcher)) else ("point", v): i for i, v in enumerate(vertices)}

        def position(vertex: Hashable) -> int:
            return index[id(vertex) if isinstance(vertex, (Task, TaskDispatcher)) else ("point", vertex)]

        plain = [dispatched.get(id(v), v) if isinstance(v, TaskDispatcher) else v for v in vertices]
        edges = [(position(u), position(v), dict(d)) for u, v, d in self.graph.edges(data=True)]
        return GraphPlan(self.name, self.early_stopping, self.report_results, plain, edges)


class GraphPlan:
    """What a node runs for a graph: vertices (Tasks, or synchronisation points, vertex 0
    is 'root') and edges ``(from, to, attributes)`` as plain lists. Needs no networkx."""

    def __init__(self, name: str, early_stopping: bool, report_results: bool,
                 vertices: list[Hashable], edges: list[tuple[int, int, dict[str, object]]]) -> None:
        self.name = name
        self.early_stopping = early_stopping
        self.report_results = report_results
        self.vertices = vertices
        self.edges = edges

    @property
    def tasks(self) -> list[list[Hashable]]:
        """Each task vertex as a stage of its own (what ran where a stage view is wanted)."""
        return [[v] for v in self.vertices if hasattr(v, "run")]

    def __repr__(self) -> str:
        return f"GraphPlan({self.name}: {len(self.vertices)} vertices, {len(self.edges)} edges)"


def dispatch_graph(graph: ExecutionGraph, dispatch: Callable[[TaskDispatcher], Task]) -> GraphPlan:
    """Validate ``graph`` and return its plan with every TaskDispatcher dispatched by ``dispatch``."""
    ExecutionGraph.is_execution_graph_valid(graph)
    dispatched = {id(v): dispatch(v) for v in graph.graph.nodes if isinstance(v, TaskDispatcher)}
    return graph.plan(dispatched)


__all__ = ["ExecutionGraph", "Flow", "GraphPlan", "dispatch_graph"]
