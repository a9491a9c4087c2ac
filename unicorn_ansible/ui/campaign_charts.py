"""The campaign report's charts: per measurement (a task's numeric value or field) and per swept
parameter, the mean value against the parameter's values with its 95% confidence interval.

The rows are the campaign's table (campaign/table.py). A chart's x axis is one parameter's
values (spaced by value when they are numbers, evenly otherwise); a series per combination of
the other swept parameters' values; each point the mean of every sample at that x (every
repeat, node and repetition of the task), with an error bar and a band between the intervals'
ends (campaign/stats.py). Drawn as SVG by the template, like the run report's charts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..campaign.parameters import Value
from ..campaign.records import CampaignSpec
from ..campaign.stats import Interval, mean_interval
from .report_charts import PALETTE

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 240, 70, 16, 12, 34
MAX_CHARTS, MAX_SERIES = 60, len(PALETTE)


def _numeric(values: Sequence[Value]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _x_positions(values: Sequence[Value], width: float) -> dict[Value, float]:
    """Where each of a parameter's values sits on the x axis (pixels from its left end)."""
    if _numeric(values):
        numbers = {v: float(v) for v in values}
        low, high = min(numbers.values()), max(numbers.values())
        span = high - low or 1.0
        return {v: round((number - low) / span * width, 1) for v, number in numbers.items()}
    step = width / max(1, len(values) - 1)
    return {v: round(i * step, 1) for i, v in enumerate(values)}


def _samples(rows: list[dict[str, Any]], task: str, field: str, parameter: str,
             others: list[str]) -> dict[tuple[Value, ...], dict[Value, list[float]]]:
    """The values of one measurement, by the other swept parameters' values, then by ``parameter``'s."""
    grouped: dict[tuple[Value, ...], dict[Value, list[float]]] = {}
    for row in rows:
        if row["task"] == task and row["field"] == field and row["value"] is not None:
            key = tuple(row[other] for other in others)
            grouped.setdefault(key, {}).setdefault(row[parameter], []).append(row["value"])
    return grouped


def _series_label(others: list[str], key: tuple[Value, ...]) -> str:
    return " ".join(f"{name}={value}" for name, value in zip(others, key)) or "every combination"


def chart(spec: CampaignSpec, rows: list[dict[str, Any]], task: str, field: str, parameter: str) -> dict[str, object]:
    """One chart: ``task``'s ``field`` against ``parameter``, a series per value of the others."""
    values = spec.grid[parameter]
    others = [name for name in spec.swept if name != parameter]
    grouped = _samples(rows, task, field, parameter, others)
    keys = sorted(grouped, key=lambda key: [spec.grid[o].index(v) for o, v in zip(others, key)])[:MAX_SERIES]
    intervals = {key: {x: mean_interval(grouped[key][x]) for x in values if grouped[key].get(x)} for key in keys}
    ends = [end for per_x in intervals.values() for i in per_x.values() for end in (i.low, i.high)]
    low, high = min(ends), max(ends)
    pad = (high - low) * 0.05  # points and bands clear of the frame
    low, high = low - pad, high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    xs = _x_positions(values, plot_w)

    def y_of(value: float) -> float:
        share = (value - low) / (high - low) if high > low else 0.5
        return round(TOP + (1 - share) * plot_h, 1)

    series = [_series(_series_label(others, key), PALETTE[n % len(PALETTE)], parameter,
                      [(LEFT + xs[x], x, interval) for x, interval in intervals[key].items()], y_of)
              for n, key in enumerate(keys)]
    return {"title": f"{task} · {field} by {parameter}", "task": task, "field": field, "parameter": parameter,
            "width": WIDTH, "height": HEIGHT, "left": LEFT, "top": TOP, "bottom": HEIGHT - BOTTOM,
            "right": WIDTH - RIGHT, "ymin": f"{low:.4g}", "ymax": f"{high:.4g}",
            "xticks": [{"x": LEFT + xs[v], "label": str(v)[:16]} for v in values],
            "samples": sum(i.n for per_x in intervals.values() for i in per_x.values()),
            "more_series": max(0, len(grouped) - MAX_SERIES), "series": series}


def _series(label: str, colour: str, parameter: str, points: list[tuple[float, Value, Interval]],
            y_of: Callable[[float], float]) -> dict[str, object]:
    """One series' drawing: its mean line, the band between its intervals' ends, a dot and an
    error bar per point (with its mean, interval and sample count as its title)."""
    points = sorted(points, key=lambda p: p[0])
    upper = [f"{x},{y_of(i.high)}" for x, _, i in points]
    lower = [f"{x},{y_of(i.low)}" for x, _, i in reversed(points)]
    widened = any(i.n > 1 for _, _, i in points)
    return {"label": label, "colour": colour,
            "line": " ".join(f"{x},{y_of(i.mean)}" for x, _, i in points),
            "band": " ".join(upper + lower) if widened else "",
            "points": [{"x": x, "y": y_of(i.mean), "low": y_of(i.low), "high": y_of(i.high),
                        "title": f"{label}, {parameter}={value}: mean {i.mean:.4g}, 95% CI "
                                 f"[{i.low:.4g}, {i.high:.4g}], n={i.n}"}
                       for x, value, i in points]}


def measurements_of(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every (task, field) the rows have a number of, in the order first seen."""
    return list(dict.fromkeys((row["task"], row["field"]) for row in rows if row["value"] is not None))


def campaign_charts(spec: CampaignSpec, rows: list[dict[str, Any]]) -> list[dict[str, object]]:
    """A chart per measurement and swept parameter (at most MAX_CHARTS)."""
    drawn: list[dict[str, object]] = []
    for task, field in measurements_of(rows):
        for parameter in spec.swept:
            if len(drawn) >= MAX_CHARTS:
                return drawn
            drawn.append(chart(spec, rows, task, field, parameter))
    return drawn
