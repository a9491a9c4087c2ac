"""`unicorn-ansible report NAME -o report.html`: one self-contained HTML file per run.

A timeline per node — the deployment, then every task as a bar from its start to
its end, coloured by result, the tasks of a parallel stage on lanes of their own —
with per-node status and errors and links to the logs. No script, font or style
sheet is loaded from anywhere: the file opens offline. Every text that comes
from the experiment or a host is escaped (jinja2 autoescape). The page itself is
the template ``templates/report.html.j2``; this module computes what it shows.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ..engine.rundir import RunDir
from ..home import private_files
from ..node.protocol import TaskKind
from ..resources import ui_templates_dir
from ..results.load import NodeResult, RunResults, load_results, node_file
from ..results.status import NodeStatus

TEMPLATE = "report.html.j2"
LANE = 20  # pixels from one bar to the next

# a task's bar by how it ended; the deployment's bar; a task known only from a progress report
COLOURS = {TaskKind.OK: "#2da44e", TaskKind.FAILURE: "#cf222e", TaskKind.CRASH: "#8250df",
           TaskKind.TIMEOUT: "#bf8700", TaskKind.UNPICKLABLE: "#cf222e", TaskKind.CANCELLED: "#6e7781",
           "deploy": "#0969da", "reported": "#57606a"}

STATUS_COLOURS = {NodeStatus.OK: "#2da44e", NodeStatus.FAILED: "#cf222e", NodeStatus.DEPLOY_FAILED: "#cf222e",
                  NodeStatus.EXECUTION_FAILED: "#cf222e", NodeStatus.UNREACHABLE: "#8250df",
                  NodeStatus.CANCELLED: "#6e7781", NodeStatus.NOT_RUN: "#6e7781"}


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


def _task_bars(node: NodeResult, timeline: Timeline, y: int) -> list[dict[str, Any]]:
    """One bar per task run, in stage order, with its preview."""
    bars = []
    for timing in sorted(node.timings, key=lambda t: (t.get("stage") or 0, t.get("index") or 0)):
        name = str(timing.get("name"))
        preview = timing.get("preview") or ""
        start, end = timing.get("start") or timeline.origin, timing.get("end") or timeline.origin
        kind = timing.get("kind") or ("reported" if node.reported else "ok")
        bars.append(timeline.bar(start, end, y, COLOURS.get(kind, "#cf222e"), name,
                                 f"{name} (stage {(timing.get('stage') or 0) + 1}): {end - start:.3f} s, {kind}: "
                                 f"{str(preview)[:200]}"))
        y += LANE
    return bars


def _log_links(run: RunDir, node: NodeResult) -> list[dict[str, str]]:
    """Links to the logs that came back: every task's, then the executor's."""
    node_dir = run.node_dir(node.node)
    links = []
    for timing in node.timings:
        log = node_file(node_dir, timing.get("log"))  # a path from the host: inside the node's folder or none
        if log is not None and log.is_file():
            links.append({"href": log.as_uri(), "label": f"{timing['name']} log"})
    executor_log = run.node_logs_dir(node.node) / "executor.log"
    if executor_log.is_file():
        links.append({"href": executor_log.resolve().as_uri(), "label": "executor log"})
    return links


def _node_view(run_dir: Path, node: NodeResult, status: dict[str, Any], timeline: Timeline) -> dict[str, Any]:
    bars = _deploy_bars(status, timeline, 4)
    bars += _task_bars(node, timeline, 4 + LANE * len(bars))
    return {"name": node.node, "status": node.status, "colour": STATUS_COLOURS.get(node.status, "#cf222e"),
            "error": node.error, "bars": bars, "height": 4 + LANE * len(bars) + 24,
            "logs": _log_links(RunDir(run_dir), node), "not_run": node.not_run}


def _render(**context: Any) -> str:
    loader = jinja2.FileSystemLoader(str(ui_templates_dir()))
    environment = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.get_template(TEMPLATE).render(**context)


def write_report(run_dir: Path, output: Path, width: int = 900) -> Path:
    """Write the run's report to ``output``; return its path."""
    run_dir = Path(run_dir)
    results = load_results(run_dir, with_values=False)  # the previews: memory bounded by them, not by the results
    run = RunDir(run_dir)
    record = run.record()
    statuses = {node.node: run.node_status(node.node) for node in results}
    timeline = Timeline.of(results, statuses, width)
    html = _render(
        run={"name": results.name, "status": results.status},
        created=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("created", 0))),
        versions=record.get("versions", {}),
        nodes=[_node_view(run_dir, node, statuses[node.node], timeline) for node in results],
        width=width, span=f"{timeline.span:.2f}", colours=COLOURS)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    inside = output.resolve().is_relative_to(run_dir.resolve())
    with private_files() if inside else contextlib.nullcontext():  # the run folder's files are private
        output.write_text(html, encoding="utf-8")
    return output


def report_for(run_dir: Path, output: Path | None = None) -> Path:
    return write_report(run_dir, output or Path(run_dir) / "report.html")
