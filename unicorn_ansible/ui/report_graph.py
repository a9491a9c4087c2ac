"""A node's pipeline or execution graph drawn for the report: boxes coloured by outcome.

The layout is computed here (columns by depth along strong edges, a row per vertex in its
column); the template draws what this returns. Weak edges (the way back of a cycle) bend
below the boxes with their counter; every task shows how often it ran.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

from ..node.protocol import TaskKind
from ..results.model import Timing

BOX_W, BOX_H, COLUMN, ROW, MARGIN = 170, 30, 210, 46, 16
#: at most this many edges are drawn between two stages of a plain pipeline
STAGE_EDGES = 64
OUTCOME_COLOURS = {"ok": "#2da44e", "failed": "#cf222e", "mixed": "#bf8700", "not run": "#afb8c1"}

#: an edge: from, to, its attributes (type, traverse_on, counter)
Edge = tuple[int, int, Mapping[str, object]]
#: what the template receives: plain values, escaped by the template
View = dict[str, object]


class Box(TypedDict, total=False):
    """A vertex as drawn: where, its label and colour; a task's outcome and runs."""

    x: int
    y: int
    point: bool
    label: str
    title: str
    colour: str
    outcome: str
    runs: int


def load_plan(pipeline_file: Path) -> object:
    """The node's pipeline as this controller compiled it (a trusted file of its own), or None."""
    import cloudpickle

    try:
        return cloudpickle.loads(pipeline_file.read_bytes())
    except Exception:
        return None


def _structure(plan: object) -> tuple[list[object], list[Edge], list[int]] | None:
    """(vertices, edges, column of each vertex) of a GraphPlan or a stage-by-stage Pipeline."""
    if hasattr(plan, "vertices") and hasattr(plan, "edges"):
        points: list[object] = list(plan.vertices)
        arrows: list[Edge] = [(a, b, dict(attrs)) for a, b, attrs in plan.edges]
        return points, arrows, _depths(len(points), arrows)
    stages = getattr(plan, "tasks", None)
    if not isinstance(stages, list):
        return None
    vertices: list[object] = []
    columns: list[int] = []
    edges: list[Edge] = []
    for number, stage in enumerate(stages):
        first = len(vertices)
        vertices += list(stage)
        columns += [number] * len(stage)
        if number and len(stage) * len(stages[number - 1]) <= STAGE_EDGES:
            edges += [(a, b, {}) for a in range(first - len(stages[number - 1]), first)
                      for b in range(first, first + len(stage))]
    return vertices, edges, columns


def _depths(count: int, edges: list[Edge]) -> list[int]:
    """Each vertex's longest distance from root along strong edges (they form no cycle)."""
    strong = [(a, b) for a, b, attrs in edges if attrs.get("type", "strong") != "weak"]
    incoming = Counter(b for _, b in strong)
    depth = [0] * count
    ready = [v for v in range(count) if not incoming[v]]
    while ready:
        vertex = ready.pop()
        for a, b in strong:
            if a == vertex:
                depth[b] = max(depth[b], depth[a] + 1)
                incoming[b] -= 1
                if not incoming[b]:
                    ready.append(b)
    return depth


def _outcome(runs: Counter[str]) -> str:
    ok, failed = runs.get(TaskKind.OK, 0), sum(n for kind, n in runs.items() if kind != TaskKind.OK)
    if not ok and not failed:
        return "not run"
    return "ok" if not failed else "failed" if not ok else "mixed"


def _vertex(vertex: object, x: int, y: int, runs: dict[str, Counter[str]]) -> Box:
    if not hasattr(vertex, "run"):  # a synchronisation point
        return {"x": x, "y": y, "point": True, "label": str(vertex)[:20], "title": f"point {vertex!r}"[:200],
                "colour": "#57606a"}
    name = str(getattr(vertex, "name", "?"))
    counts = runs.get(name, Counter())
    total = sum(counts.values())
    outcome = _outcome(counts)
    label = (name[:20] + "…" if len(name) > 21 else name) + (f" ×{total}" if total > 1 else "")
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "not run"
    return {"x": x, "y": y, "point": False, "label": label, "title": f"{name}: {detail}",
            "colour": OUTCOME_COLOURS[outcome], "outcome": outcome, "runs": total}


def _edge(a: Box, b: Box, attrs: Mapping[str, object], bottom: int) -> View:
    x1, y1 = a.get("x", 0) + (BOX_W if not a.get("point") else 8), a.get("y", 0) + BOX_H // 2
    x2, y2 = b.get("x", 0), b.get("y", 0) + BOX_H // 2
    weak = attrs.get("type") == "weak"
    colour = "#cf222e" if attrs.get("traverse_on") == "failure" else "#57606a"
    counter = attrs.get("counter")
    label = ("weak " if weak else "") + (f"≤{counter}×" if counter else "∞" if weak else "")
    if weak and x2 <= x1:  # a way back: below every box
        path = f"M{x1},{y1} C{x1 + 40},{bottom} {x2 - 40},{bottom} {x2},{y2}"
        return {"path": path, "dashed": True, "colour": colour, "label": label,
                "lx": (x1 + x2) // 2, "ly": bottom - 6}
    return {"path": f"M{x1},{y1} L{x2},{y2}", "dashed": weak, "colour": colour, "label": label,
            "lx": (x1 + x2) // 2, "ly": (y1 + y2) // 2 - 4}


def draw_graph(plan: object, timings: list[Timing]) -> View | None:
    """The drawing of a node's plan: {width, height, vertices, edges}; None when there is no plan."""
    structure = _structure(plan) if plan is not None else None
    if not structure or not structure[0]:
        return None
    vertices, edges, columns = structure
    runs: dict[str, Counter[str]] = {}
    for timing in timings:
        runs.setdefault(str(timing.get("name")), Counter())[str(timing.get("kind") or TaskKind.OK)] += 1
    rows: Counter[int] = Counter()
    drawn = []
    for vertex, column in zip(vertices, columns):
        drawn.append(_vertex(vertex, MARGIN + column * COLUMN, MARGIN + rows[column] * ROW, runs))
        rows[column] += 1
    height = MARGIN * 2 + max(rows.values()) * ROW + 30
    lines = [_edge(drawn[a], drawn[b], attrs, height - 12) for a, b, attrs in edges
             if 0 <= a < len(drawn) and 0 <= b < len(drawn)]
    return {"width": MARGIN * 2 + (max(columns) + 1) * COLUMN, "height": height, "vertices": drawn,
            "edges": lines, "box_w": BOX_W, "box_h": BOX_H}
