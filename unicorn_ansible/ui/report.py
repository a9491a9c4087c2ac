"""`unicorn-ansible report NAME -o report.html`: one self-contained HTML file per run.

A timeline per node — the deployment, then every task as a bar from its start to
its end, coloured by result, the tasks of a parallel stage on lanes of their own —
with per-node status and errors and links to the logs. No script, font or style
sheet is loaded from anywhere: the file opens offline. Every text that comes
from the experiment or a host is escaped (jinja2 autoescape).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import jinja2

from ..node.protocol import TaskKind
from ..results.load import load_results
from ..results.status import NodeStatus

# a task's bar by how it ended; the deployment's bar; a task known only from a progress report
COLOURS = {TaskKind.OK: "#2da44e", TaskKind.FAILURE: "#cf222e", TaskKind.CRASH: "#8250df",
           TaskKind.TIMEOUT: "#bf8700", TaskKind.UNPICKLABLE: "#cf222e", TaskKind.CANCELLED: "#6e7781",
           "deploy": "#0969da", "reported": "#57606a"}

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>unicorn-ansible run {{ run.name }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #24292f; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table.meta td { padding: 2px 12px 2px 0; font-size: 13px; }
.node { border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 14px; margin: 14px 0; }
.status { font-weight: 600; padding: 1px 8px; border-radius: 10px; color: white; font-size: 13px; }
.error { color: #cf222e; white-space: pre-wrap; font-family: monospace; font-size: 12px; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }
svg text { font-size: 11px; font-family: monospace; }
ul.logs { font-size: 12px; columns: 2; }
</style></head>
<body>
<h1>Run {{ run.name }}</h1>
<table class="meta">
<tr><td>status</td><td>{{ run.status }}</td></tr>
<tr><td>created</td><td>{{ created }}</td></tr>
<tr><td>nodes</td><td>{{ nodes | length }}</td></tr>
{% for name, version in versions.items() %}<tr><td>{{ name }}</td><td>{{ version }}</td></tr>{% endfor %}
</table>
<div class="legend">{% for kind, colour in colours.items() %}<span><i style="background: {{ colour }}"></i>{{ kind }}</span>{% endfor %}</div>
{% for node in nodes %}
<div class="node" id="node-{{ loop.index }}">
<h2>{{ node.name }} <span class="status" style="background: {{ node.colour }}">{{ node.status }}</span></h2>
{% if node.error %}<div class="error">{{ node.error }}</div>{% endif %}
<svg width="{{ width + 260 }}" height="{{ node.height }}" role="img" aria-label="timeline of {{ node.name }}">
{% for bar in node.bars %}
<g><title>{{ bar.title }}</title>
<rect x="{{ 250 + bar.x }}" y="{{ bar.y }}" width="{{ bar.w }}" height="16" rx="3" fill="{{ bar.colour }}"></rect>
<text x="4" y="{{ bar.y + 12 }}">{{ bar.label }}</text></g>
{% endfor %}
<line x1="250" y1="{{ node.height - 14 }}" x2="{{ 250 + width }}" y2="{{ node.height - 14 }}" stroke="#d0d7de"></line>
<text x="250" y="{{ node.height - 2 }}">0 s</text>
<text x="{{ 250 + width - 60 }}" y="{{ node.height - 2 }}">{{ span }} s</text>
</svg>
{% if node.logs %}<ul class="logs">{% for log in node.logs %}<li><a href="{{ log.href }}">{{ log.label }}</a></li>{% endfor %}</ul>{% endif %}
{% if node.not_run %}<p>not run: {{ node.not_run | join(", ") }}</p>{% endif %}
</div>
{% endfor %}
</body></html>
"""

STATUS_COLOURS = {NodeStatus.OK: "#2da44e", NodeStatus.FAILED: "#cf222e", NodeStatus.DEPLOY_FAILED: "#cf222e",
                  NodeStatus.EXECUTION_FAILED: "#cf222e", NodeStatus.UNREACHABLE: "#8250df",
                  NodeStatus.CANCELLED: "#6e7781", NodeStatus.NOT_RUN: "#6e7781"}


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_report(run_dir: Path, output: Path, width: int = 900) -> Path:
    """Write the run's report to ``output``; return its path."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    record = _read_json(run_dir / "run.json")
    statuses = {node.node: _read_json(run_dir / "nodes" / node.node / "status.json") for node in results}
    starts = [s["deploy_started"] for s in statuses.values() if s.get("deploy_started")]
    starts += [t["start"] for node in results for t in node.timings if t.get("start")]
    ends = [s.get("deploy_finished") or 0 for s in statuses.values()]
    ends += [t["end"] for node in results for t in node.timings if t.get("end")]
    origin = min(starts) if starts else 0.0
    span = max(max(ends, default=origin) - origin, 0.001)
    scale = width / span

    def bar(start: float, end: float, y: int, colour: str, label: str, title: str) -> Dict[str, Any]:
        x = (start - origin) * scale
        return {"x": round(x, 1), "w": round(max((end - start) * scale, 2), 1), "y": y, "colour": colour,
                "label": label[:34], "title": title}

    nodes: List[Dict[str, Any]] = []
    for node in results:
        status = statuses[node.node]
        bars: List[Dict[str, Any]] = []
        y = 4
        if status.get("deploy_started"):
            finished = status.get("deploy_finished") or status["deploy_started"]
            deploy = status.get("deploy") or {}
            bars.append(bar(status["deploy_started"], finished, y, COLOURS["deploy"], "deployment",
                            f"deployment: {finished - status['deploy_started']:.2f} s"
                            + (" (environment reused)" if deploy.get("skipped") else "")))
            y += 20
        values = {name: [repr(v) for v in results_] for name, results_ in node.tasks.items()}
        seen: Dict[str, int] = {}
        for timing in sorted(node.timings, key=lambda t: (t.get("stage") or 0, t.get("index") or 0)):
            name = str(timing.get("name"))
            occurrence = seen.get(name, 0)
            seen[name] = occurrence + 1
            preview = timing.get("preview") or (values.get(name, [""] * (occurrence + 1))[occurrence:occurrence + 1]
                                                or [""])[0]
            start, end = timing.get("start") or origin, timing.get("end") or origin
            kind = timing.get("kind") or ("reported" if node.reported else "ok")
            bars.append(bar(start, end, y, COLOURS.get(kind, "#cf222e"), name,
                            f"{name} (stage {(timing.get('stage') or 0) + 1}): {end - start:.3f} s, {kind}: "
                            f"{str(preview)[:200]}"))
            y += 20
        logs = []
        for timing in node.timings:
            if timing.get("log"):
                path = run_dir / "nodes" / node.node / timing["log"]
                if path.is_file():
                    logs.append({"href": path.resolve().as_uri(), "label": f"{timing['name']} log"})
        executor_log = run_dir / "nodes" / node.node / "logs" / "executor.log"
        if executor_log.is_file():
            logs.append({"href": executor_log.resolve().as_uri(), "label": "executor log"})
        nodes.append({"name": node.node, "status": node.status, "colour": STATUS_COLOURS.get(node.status, "#cf222e"),
                      "error": node.error, "bars": bars, "height": y + 24, "logs": logs, "not_run": node.not_run})
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = environment.from_string(TEMPLATE).render(
        run={"name": results.name, "status": results.status},
        created=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("created", 0))),
        versions=record.get("versions", {}), nodes=nodes, width=width, span=f"{span:.2f}", colours=COLOURS)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    return output


def report_for(run_dir: Path, output: Optional[Path] = None) -> Path:
    return write_report(run_dir, output or Path(run_dir) / "report.html")
