"""`unicorn-ansible report NAME -o report.html`: one self-contained HTML file per run.

Per node: its status and why it stopped, its time limits, the deployment's requirements
with their output, its pipeline or graph drawn with tasks coloured by outcome and cycles
counted (report_graph.py), a timeline (the deployment, then a lane per task, each run a bar
coloured by result), every task's result preview and failure text in view with a log
excerpt on demand, and the artifacts linked. For the run: a chart per task and numeric field
of measurements repeated over cycles, loops or nodes (report_charts.py). No script, font or
style sheet is loaded from anywhere: the file opens offline. Every text that comes from the
experiment or a host is escaped (jinja2 autoescape), and values appear as bounded previews so
a large run's file stays small. The page is the template ``templates/report.html.j2``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ..engine.rundir import RunDir, read_json
from ..home import private_files
from ..node.protocol import NODE_SPEC, PIPELINE, STATE, TaskKind
from ..resources import ui_templates_dir
from ..results.load import VIEW_PAYLOAD_LIMIT, NodeResult, RunResults, load_results, node_file
from ..results.measurements import measurements
from ..results.status import STATUS_COLOURS
from .report_charts import charts
from .report_details import (
    artifact_links,
    deployment_view,
    preview,
    relative_href,
    seconds_text,
    task_rows,
    why_stopped,
)
from .report_graph import OUTCOME_COLOURS, draw_graph, load_plan

TEMPLATE = "report.html.j2"
LANE = 20  # pixels from one bar to the next

# a task's bar by how it ended; the deployment's bar; a task known only from a progress report
COLOURS = {TaskKind.OK: "#2da44e", TaskKind.FAILURE: "#cf222e", TaskKind.CRASH: "#8250df",
           TaskKind.TIMEOUT: "#bf8700", TaskKind.UNPICKLABLE: "#cf222e", TaskKind.CANCELLED: "#6e7781",
           "deploy": "#0969da", "reported": "#57606a"}


@dataclass
class Timeline:
    """Seconds since the run's first event, drawn ``width`` pixels wide."""

    origin: float
    span: float
    width: int

    @classmethod
    def of(cls, results: RunResults, statuses: dict[str, dict[str, Any]], width: int) -> Timeline:
        starts = [s["deploy_started"] for s in statuses.values() if s.get("deploy_started")]
        starts += [t["start"] for node in results for t in node.timings if t.get("start")]
        ends = [s.get("deploy_finished") or 0 for s in statuses.values()]
        ends += [t["end"] for node in results for t in node.timings if t.get("end")]
        origin = min(starts) if starts else 0.0
        return cls(origin, max(max(ends, default=origin) - origin, 0.001), width)

    def bar(self, start: float, end: float, y: int, colour: str, label: str, title: str) -> dict[str, Any]:
        scale = self.width / self.span
        return {"x": round((start - self.origin) * scale, 1), "w": round(max((end - start) * scale, 2), 1), "y": y,
                "colour": colour, "label": label[:34], "title": title}


def _deploy_bars(status: dict[str, Any], timeline: Timeline, y: int) -> list[dict[str, Any]]:
    if not status.get("deploy_started"):
        return []
    started = status["deploy_started"]
    finished = status.get("deploy_finished") or started
    reused = " (environment reused)" if (status.get("deploy") or {}).get("skipped") else ""
    return [timeline.bar(started, finished, y, COLOURS["deploy"], "deployment",
                         f"deployment: {finished - started:.2f} s{reused}")]


def _task_bars(node: NodeResult, timeline: Timeline, y: int) -> tuple[list[dict[str, Any]], int]:
    """One bar per task run, a lane per task name (the runs of a cycle side by side); the bars
    and the number of lanes. A bar's title has that run's own value."""
    lanes: dict[str, int] = {}
    seen: dict[str, int] = {}
    bars = []
    for timing in sorted(node.timings, key=lambda t: (t.get("start") or 0, t.get("stage") or 0)):
        name = str(timing.get("name"))
        lane = lanes.setdefault(name, len(lanes))
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        runs = node.tasks.get(name) or []
        shown = timing.get("preview") or (preview(runs[occurrence]) if occurrence < len(runs) else "")
        start, end = timing.get("start") or timeline.origin, timing.get("end") or timeline.origin
        kind = timing.get("kind") or ("reported" if node.reported else TaskKind.OK)
        bars.append(timeline.bar(start, end, y + lane * LANE, COLOURS.get(kind, "#cf222e"),
                                 name if not occurrence else "",
                                 f"{name} #{occurrence + 1} (stage {(timing.get('stage') or 0) + 1}): "
                                 f"{end - start:.3f} s, {kind}: {str(shown)[:200]}"))
    return bars, len(lanes)


def _log_links(run: RunDir, node: NodeResult, output_dir: Path) -> list[dict[str, str]]:
    """Links to the logs that came back, every task's then the executor's, relative to the report
    (as its artifact links: they keep working when the run folder and its report move together)."""
    node_dir = run.node_dir(node.node)
    links = []
    for timing in node.timings:
        log = node_file(node_dir, timing.get("log"))  # a path from the host: inside the node's folder or none
        if log is not None and log.is_file():
            links.append({"href": relative_href(log, output_dir), "label": f"{timing['name']} log"})
    executor_log = run.node_logs_dir(node.node) / "executor.log"
    if executor_log.is_file():
        links.append({"href": relative_href(executor_log, output_dir), "label": "executor log"})
    return links


def _node_view(run: RunDir, node: NodeResult, status: dict[str, Any], timeline: Timeline,
               output_dir: Path) -> dict[str, Any]:
    bars = _deploy_bars(status, timeline, 4)
    task_bars, lanes = _task_bars(node, timeline, 4 + LANE * len(bars))
    lanes += len(bars)
    spec = read_json(run.shipped_dir(node.node) / NODE_SPEC) or {}
    return {"name": node.node, "host": node.host, "status": node.status, "colour": STATUS_COLOURS.get(node.status, "#cf222e"),
            "error": node.error, "notice": node.notice, "bars": bars + task_bars, "height": 4 + LANE * lanes + 24,
            "logs": _log_links(run, node, output_dir), "not_run": node.not_run,
            "stopped": why_stopped(node, read_json(run.node_dir(node.node) / STATE) or {}),
            "limits": {"time limit": seconds_text(spec.get("time_limit")), "task timeout": seconds_text(spec.get("task_timeout"))},
            "deploy": deployment_view(run, node.node), "tasks": task_rows(run, node),
            "graph": draw_graph(load_plan(run.shipped_dir(node.node) / PIPELINE), node.timings),
            "artifacts": artifact_links(run, node, output_dir)}


def render(template: str = TEMPLATE, **context: Any) -> str:
    """A page from one of ``templates/`` (autoescaped: every text from a host or an experiment)."""
    loader = jinja2.FileSystemLoader(str(ui_templates_dir()))
    environment = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.get_template(template).render(**context)


def write_report(run_dir: Path, output: Path, width: int = 900) -> Path:
    """Write the run's report to ``output``; return its path."""
    run_dir = Path(run_dir)
    # values up to a size (charts, failure texts); bigger ones by their preview: memory bounded by the previews
    results = load_results(run_dir, payload_limit=VIEW_PAYLOAD_LIMIT)
    run = RunDir(run_dir)
    record = run.record()
    statuses = {node.node: run.node_status(node.node) for node in results}
    timeline = Timeline.of(results, statuses, width)
    output = Path(output)
    html = render(
        run={"name": results.name, "status": results.status, "parameters": results.parameters},
        created=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("created", 0))),
        versions=record.get("versions", {}),
        nodes=[_node_view(run, node, statuses[node.node], timeline, output.resolve().parent) for node in results],
        charts=charts(measurements(results), [node.node for node in results]),
        width=width, span=f"{timeline.span:.2f}", colours=COLOURS, outcome_colours=OUTCOME_COLOURS)
    output.parent.mkdir(parents=True, exist_ok=True)
    inside = output.resolve().is_relative_to(run_dir.resolve())
    with private_files() if inside else contextlib.nullcontext():  # the run folder's files are private
        # a host's names need not be UTF-8 (a file named b"\xff"): such bytes are shown as escapes
        output.write_text(html, encoding="utf-8", errors="backslashreplace")
    return output


def report_for(run_dir: Path, output: Path | None = None) -> Path:
    return write_report(run_dir, output or Path(run_dir) / "report.html")
