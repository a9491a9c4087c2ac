"""Charts of repeated measurements for the report: one per task and numeric field.

The rows are :func:`unicorn_ansible.results.measurements.measurements`; a chart puts the
repetitions on x (or the nodes, when each node measured once) and the values on y, one
series per node. Points are drawn as circles while a chart has few enough of them; past
that, lines only, so a large run's file stays small.
"""

from __future__ import annotations

from collections.abc import Callable

from ..results.measurements import Measurement

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 220, 64, 28, 12
#: a chart with more points than this is drawn with lines only
MAX_DOTS = 3000
MAX_CHARTS = 60
PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#e16f24", "#6e7781",
           "#bf3989", "#4d2d00")


#: what the template receives: plain values, escaped by the template
View = dict[str, object]


def _series_by_chart(rows: list[Measurement]) -> dict[tuple[str, str], dict[str, list[tuple[int, float]]]]:
    charts: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = {}
    for row in rows:
        charts.setdefault((row["task"], row["field"]), {}).setdefault(row["node"], []).append(
            (row["repetition"], row["value"]))
    return charts


def _scale(low: float, high: float, size: int, flip: bool = False) -> Callable[[float], float]:
    span = high - low

    def to_pixels(value: float) -> float:
        share = (value - low) / span if span else 0.5  # every value the same: a line across the middle
        return round((1 - share if flip else share) * size, 1)

    return to_pixels


def _label(value: float) -> str:
    return f"{value:.4g}"


def chart(task: str, field: str, series: dict[str, list[tuple[int, float]]], nodes: list[str]) -> View:
    """One chart's drawing: axes' ends, and per node its points (pixels) and, if few, its dots."""
    across_nodes = all(len(points) == 1 for points in series.values()) and len(series) > 1
    if across_nodes:  # each node measured once: the nodes are the x axis
        series = {node: [(nodes.index(node), points[0][1])] for node, points in series.items()}
    values = [v for points in series.values() for _, v in points]
    xs = [x for points in series.values() for x, _ in points]
    plot_w, plot_h = WIDTH - LEFT - 12, HEIGHT - BOTTOM - TOP
    to_x, to_y = _scale(min(xs), max(xs), plot_w), _scale(min(values), max(values), plot_h, flip=True)
    dots = len(values) <= MAX_DOTS
    drawn = []
    for node, points in series.items():
        pixels = [(LEFT + to_x(x), TOP + to_y(v), x, v) for x, v in sorted(points)]
        drawn.append({"node": node, "colour": PALETTE[nodes.index(node) % len(PALETTE)],
                      "line": " ".join(f"{px},{py}" for px, py, _, _ in pixels),
                      "dots": [{"x": px, "y": py, "title": f"{node} #{x + 1}: {_label(v)}"}
                               for px, py, x, v in pixels] if dots else []})
    return {"title": f"{task} · {field}", "task": task, "field": field, "width": WIDTH, "height": HEIGHT,
            "left": LEFT, "top": TOP, "bottom": HEIGHT - BOTTOM, "right": WIDTH - 12,
            "ymin": _label(min(values)), "ymax": _label(max(values)),
            "xlabel": "node" if across_nodes else "repetition",
            "xmin": "1" if not across_nodes else nodes[min(xs)][:20],
            "xmax": str(max(xs) + 1) if not across_nodes else nodes[max(xs)][:20],
            "points": len(values), "series": drawn}


def charts(rows: list[Measurement], nodes: list[str]) -> list[View]:
    """A chart for every task and field with at least two numbers, at most MAX_CHARTS."""
    drawn = []
    for (task, field), series in _series_by_chart(rows).items():
        if sum(len(points) for points in series.values()) >= 2:
            drawn.append(chart(task, field, series, nodes))
        if len(drawn) >= MAX_CHARTS:
            break
    return drawn
