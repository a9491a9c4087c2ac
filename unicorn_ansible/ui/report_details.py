"""The report's per-node details: task rows with result previews, failure text and log
excerpts, the deployment's requirements, why the node stopped, its artifacts linked.

Everything is bounded: previews and failure texts are cut, log excerpts are the end of a
log, and only so many per node, so that a run of 100 nodes and 10,000 results stays small.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from ..engine.rundir import RunDir
from ..node.outcome import bounded_repr
from ..node.protocol import TaskKind
from ..results.artifacts import human_size
from ..results.model import NodeResult, Timing
from ..results.refused import Refused, ResultLike, succeeded
from ..results.status import NodeStatus

#: what the template receives for a row or a section: plain values, escaped by the template
View = dict[str, object]

PREVIEW = 200
FAILURE_TEXT = 1000
FAILURES_SHOWN = 3
LOG_EXCERPT = 3000
#: log excerpts per node at most (the logs themselves are linked)
EXCERPTS = 40


def preview(result: ResultLike) -> str:
    """A Result's value (a Success's) or text (a Failure's), cut to a preview."""
    value = result.unwrap() if succeeded(result) else result.failure()
    text = value if isinstance(value, str) else bounded_repr(value, PREVIEW)
    return text if len(text) <= PREVIEW else text[:PREVIEW - 1] + "…"


def _failure_text(result: ResultLike) -> str:
    value = result.failure()
    text = value if isinstance(value, str) else bounded_repr(value, FAILURE_TEXT)
    return text if len(text) <= FAILURE_TEXT else text[:FAILURE_TEXT - 1] + "…"


def seconds_text(value: float | None) -> str:
    return f"{float(value):g} s" if isinstance(value, (int, float)) and value else "none"


def _log_tail(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - LOG_EXCERPT))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def _row(run: RunDir, node: NodeResult, name: str, timings: list[Timing], excerpt: bool) -> View:
    results = node.tasks.get(name) or []
    failures = [r for r in results if not succeeded(r) and not isinstance(r, Refused)]
    refused = [r for r in results if isinstance(r, Refused)]
    last = results[-1] if results else None
    failed_runs = [t for t in timings if t.get("kind") not in (None, TaskKind.OK)]
    log_of = (failed_runs or timings)[-1].get("log")
    return {"name": name, "runs": len(timings), "failed": len(failed_runs),
            "seconds": sum((t.get("end") or 0) - (t.get("start") or 0) for t in timings) / max(1, len(timings)),
            "preview": preview(last) if last is not None else str(timings[-1].get("preview") or ""),
            "ok": last is not None and succeeded(last),
            "failures": [_failure_text(r) for r in failures[:FAILURES_SHOWN]],
            "more_failures": max(0, len(failures) - FAILURES_SHOWN),
            # results the controller did not load: not the task's failures, shown apart
            "refused": [r.message for r in refused[:FAILURES_SHOWN]],
            "more_refused": max(0, len(refused) - FAILURES_SHOWN),
            "log": _log_tail(run.node_dir(node.executor_id) / log_of) if excerpt and log_of else None}


def task_rows(run: RunDir, node: NodeResult) -> list[View]:
    """One row per task name, in the order they first ran: runs, failures, last value, log excerpt."""
    by_name: dict[str, list[Timing]] = {}
    for timing in sorted(node.timings, key=lambda t: (t.get("start") or 0)):
        by_name.setdefault(str(timing.get("name")), []).append(timing)
    return [_row(run, node, name, timings, number < EXCERPTS) for number, (name, timings) in enumerate(by_name.items())]


def deployment_view(run: RunDir, node: str) -> View:
    """The node's requirements as they ran: command, exit code, seconds, the end of their output."""
    report = run.deploy_report(node)
    if report is None:
        return {"commands": [], "skipped": False, "error": None, "known": False}
    commands = [{"command": c.command[:300], "rc": c.rc, "seconds": round((c.end or 0) - (c.start or 0), 2),
                 "output": (c.output_tail or "")[-LOG_EXCERPT:]} for c in report.commands]
    return {"commands": commands, "skipped": report.skipped, "error": report.error, "known": True}


def why_stopped(node: NodeResult, stopped: str | None) -> str:
    """One sentence: why this node's pipeline ended where it did (``stopped``: why its plan started
    no more tasks, as its state says)."""
    if node.status == NodeStatus.OK:
        return "every task ran and succeeded"
    reason = node.error or stopped or ""
    if node.status == NodeStatus.FAILED:
        reason = stopped or ("a task failed" + (f"; not run: {', '.join(node.not_run[:10])}" if node.not_run else ""))
    return f"{node.status}: {reason}".rstrip(": ")


def relative_href(path: Path, output_dir: Path) -> str:
    """A link from the report in ``output_dir`` to ``path`` (any bytes in its name)."""
    return quote(os.path.relpath(path.resolve(), output_dir).encode("utf-8", "surrogateescape"))


def artifact_links(run: RunDir, node: NodeResult, output_dir: Path) -> list[View]:
    """The node's artifacts: a link relative to the report (it travels with the run folder) or where it was left."""
    links: list[View] = []
    for artifact in node.artifacts:
        href = relative_href(run.path / artifact.file, output_dir) if artifact.file else None
        links.append({"task": artifact.task or "(pipeline)", "path": artifact.path, "size": human_size(artifact.size),
                      "sha256": artifact.sha256 or "", "href": href,
                      "left": None if href else f"left on the host at {artifact.source}: {artifact.left}"})
    return links
