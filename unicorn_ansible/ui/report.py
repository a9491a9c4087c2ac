"""`unicorn-ansible report NAME -o report.html`: one self-contained HTML file per run.

Per node: its status and why it stopped, its time limits, the deployment's requirements
with their output, its pipeline or graph drawn with tasks coloured by outcome and cycles
counted (report_graph.py), a timeline (the deployment, then a lane per task, each run a bar
coloured by result), every task's result preview and failure text in view with a log
excerpt on demand, and the artifacts linked. For the run: a chart per task and numeric field
of measurements repeated over cycles, loops or nodes (report_charts.py). No script, font or
style sheet is loaded from anywhere: the file opens offline. Every text that comes from the
experiment or a host is escaped (jinja2 autoescape), its control characters too (ESC, BEL: a
report read with cat or less is a terminal's input), and values appear as bounded previews so
a large run's file stays small. The page is the template ``templates/report.html.j2``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import markupsafe

from ..engine.rundir import RunDir
from ..home import private_files
from ..node.protocol import NODE_SPEC, PIPELINE, STATE, TaskKind
from ..node.shown import printable
from ..node.wire import ExecutorState, NodeSpec, NodeStatusRecord, WireError
from ..resources import ui_templates_dir
from ..results.load import VIEW_PAYLOAD_LIMIT, NodeResult, RunResults, load_results
from ..results.measurements import measurements
from ..results.outbox import node_file
from .colours import TASK_COLOURS, UNKNOWN_COLOUR, status_colour
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

#: what the template receives for a bar, a node, a link: plain values, escaped by the template
View = dict[str, object]


@dataclass
class Timeline:
    """Seconds since the run's first event, drawn ``width`` pixels wide."""

    origin: float
    span: float
    width: int

    @classmethod
    def of(cls, results: RunResults, statuses: dict[str, NodeStatusRecord], width: int) -> Timeline:
        starts = [s.deploy_started for s in statuses.values() if s.deploy_started]
        starts += [start for node in results for t in node.timings if (start := t.get("start"))]
        ends = [s.deploy_finished or 0.0 for s in statuses.values()]
        ends += [end for node in results for t in node.timings if (end := t.get("end"))]
        origin = min(starts) if starts else 0.0
        return cls(origin, max(max(ends, default=origin) - origin, 0.001), width)

    def bar(self, start: float, end: float, y: int, colour: str, label: str, title: str) -> View:
        scale = self.width / self.span
        return {"x": round((start - self.origin) * scale, 1), "w": round(max((end - start) * scale, 2), 1), "y": y,
                "colour": colour, "label": label[:34], "title": title}


def _deploy_bars(status: NodeStatusRecord, timeline: Timeline, y: int) -> list[View]:
    if not status.deploy_started:
        return []
    started = status.deploy_started
    finished = status.deploy_finished or started
    reused = " (environment reused)" if status.deploy is not None and status.deploy.skipped else ""
    return [timeline.bar(started, finished, y, TASK_COLOURS["deploy"], "deployment",
                         f"deployment: {finished - started:.2f} s{reused}")]


def _task_bars(node: NodeResult, timeline: Timeline, y: int) -> tuple[list[View], int]:
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
        bars.append(timeline.bar(start, end, y + lane * LANE, TASK_COLOURS.get(kind, UNKNOWN_COLOUR),
                                 name if not occurrence else "",
                                 f"{name} #{occurrence + 1} (stage {(timing.get('stage') or 0) + 1}): "
                                 f"{end - start:.3f} s, {kind}: {str(shown)[:200]}"))
    return bars, len(lanes)


def _log_links(run: RunDir, node: NodeResult, output_dir: Path) -> list[dict[str, str]]:
    """Links to the logs that came back, every task's then the executor's, relative to the report
    (as its artifact links: they keep working when the run folder and its report move together)."""
    node_dir = run.node_dir(node.executor_id)
    links = []
    for timing in node.timings:
        log = node_file(node_dir, timing.get("log"))  # a path from the host: inside the node's folder or none
        if log is not None and log.is_file():
            links.append({"href": relative_href(log, output_dir), "label": f"{timing.get('name')} log"})
    executor_log = run.node_logs_dir(node.executor_id) / "executor.log"
    if executor_log.is_file():
        links.append({"href": relative_href(executor_log, output_dir), "label": "executor log"})
    return links


def _spec(run: RunDir, executor: str) -> NodeSpec:
    """The node's specification as the compiler wrote it (none readable: the defaults)."""
    try:
        return NodeSpec.read(run.shipped_dir(executor) / NODE_SPEC, lenient=True) or NodeSpec()
    except WireError:
        return NodeSpec()


def _plan_stopped(run: RunDir, executor: str) -> str | None:
    """Why the node's plan started no more tasks, as its state says (a state refused: the node's error says so)."""
    try:
        state = ExecutorState.read(run.node_dir(executor) / STATE)
    except WireError:
        return None
    return state.stopped if state is not None else None


def _node_view(run: RunDir, node: NodeResult, status: NodeStatusRecord, timeline: Timeline,
               output_dir: Path) -> View:
    bars = _deploy_bars(status, timeline, 4)
    task_bars, lanes = _task_bars(node, timeline, 4 + LANE * len(bars))
    lanes += len(bars)
    spec = _spec(run, node.executor_id)
    return {"name": node.executor_id, "host": node.node, "status": node.status, "colour": status_colour(node.status),
            "error": node.error, "notice": node.notice, "bars": bars + task_bars, "height": 4 + LANE * lanes + 24,
            "logs": _log_links(run, node, output_dir), "not_run": node.not_run,
            "stopped": why_stopped(node, _plan_stopped(run, node.executor_id)),
            "limits": {"time limit": seconds_text(spec.time_limit), "task timeout": seconds_text(spec.task_timeout)},
            "deploy": deployment_view(run, node.executor_id), "tasks": task_rows(run, node),
            "graph": draw_graph(load_plan(run.shipped_dir(node.executor_id) / PIPELINE), node.timings),
            "artifacts": artifact_links(run, node, output_dir)}


def _shown(value: object) -> object:
    """What a template writes: a text with its control characters escaped (then HTML-escaped)."""
    if isinstance(value, str):
        return type(value)(printable(value)) if isinstance(value, markupsafe.Markup) else printable(value)
    return value


def render(template: str = TEMPLATE, **context: object) -> str:
    """A page from one of ``templates/`` (autoescaped: every text from a host or an experiment,
    and every text's control characters escaped)."""
    loader = jinja2.FileSystemLoader(str(ui_templates_dir()))
    environment = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                                     finalize=_shown)
    return environment.get_template(template).render(**context)


def write_report(run_dir: Path, output: Path, width: int = 900) -> Path:
    """Write the run's report to ``output``; return its path."""
    run_dir = Path(run_dir)
    # values up to a size (charts, failure texts); bigger ones by their preview: memory bounded by the previews
    results = load_results(run_dir, payload_limit=VIEW_PAYLOAD_LIMIT)
    run = RunDir(run_dir)
    record = run.run_record()
    statuses = {node.executor_id: run.node_status(node.executor_id) for node in results}
    timeline = Timeline.of(results, statuses, width)
    output = Path(output)
    html = render(
        run={"name": results.name, "status": results.status, "parameters": results.parameters},
        created=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created or 0)),
        versions=dict(record.versions),
        nodes=[_node_view(run, node, statuses[node.executor_id], timeline, output.resolve().parent)
               for node in results],
        charts=charts(measurements(results), [node.executor_id for node in results]),
        width=width, span=f"{timeline.span:.2f}", colours=TASK_COLOURS, outcome_colours=OUTCOME_COLOURS)
    output.parent.mkdir(parents=True, exist_ok=True)
    inside = output.resolve().is_relative_to(run_dir.resolve())
    with private_files() if inside else contextlib.nullcontext():  # the run folder's files are private
        # a host's names need not be UTF-8 (a file named b"\xff"): such bytes are shown as escapes
        output.write_text(html, encoding="utf-8", errors="backslashreplace")
    return output


def report_for(run_dir: Path, output: Path | None = None) -> Path:
    return write_report(run_dir, output or Path(run_dir) / "report.html")
