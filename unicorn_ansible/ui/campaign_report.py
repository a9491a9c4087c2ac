"""`unicorn-ansible campaign NAME --report`: one self-contained HTML file per campaign.

Its progress, a chart per measurement and swept parameter (campaign_charts.py: mean and 95%
confidence interval across repeats and nodes), and every combination with its status, its
error and a link to its run's own report (ui/report.py, written beside the run when missing or
older than the run's record). Like the run report: no script, font or style sheet from
anywhere, every text from the experiment or a host escaped; links are relative, so the
campaign's report and the runs' folders can move together (the home folder, say).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..campaign.table import Campaign, eta_text
from ..engine.lifecycle import run_path
from ..home import private_files
from .campaign_charts import campaign_charts
from .report import render, report_for
from .report_details import relative_href

TEMPLATE = "campaign.html.j2"


def _run_report(run: str, output_dir: Path) -> str | None:
    """A link to the run's own report, written first when it is missing or older than the run."""
    folder = run_path(run)
    if not folder.exists():
        return None
    report = folder.path / "report.html"
    if not report.exists() or report.stat().st_mtime < folder.record_file.stat().st_mtime:
        try:
            report_for(folder.path)
        except Exception:  # a run whose report cannot be written is listed without its link
            return None
    return relative_href(report, output_dir)


def _combinations(campaign: Campaign, progress: dict[str, Any], output_dir: Path) -> list[dict[str, Any]]:
    names = [name for name, _ in campaign.spec.parameters]
    return [{"index": entry["index"], "settings": [entry["parameters"][n] for n in names], "repeat": entry["repeat"],
             "status": entry["status"], "attempts": entry["attempts"], "run": entry["run"],
             "href": _run_report(entry["run"], output_dir) if entry["run"] else None,
             "error": entry["error"], "seconds": "" if entry["seconds"] is None else f"{entry['seconds']:.1f}"}
            for entry in progress["combinations"]]


def write_campaign_report(campaign: Campaign, output: Path) -> Path:
    """Write the campaign's report to ``output``; return its path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    progress = campaign.progress()
    rows = campaign.rows()
    html = render(TEMPLATE, campaign={"name": campaign.name, "experiment": campaign.spec.experiment,
                                      "repeat": campaign.spec.repeat,
                                      "parameters": [(n, list(v)) for n, v in campaign.spec.parameters]},
                  progress=progress, eta=eta_text(progress["eta_seconds"]),
                  created=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(campaign.spec.created)),
                  charts=campaign_charts(campaign.spec, rows),
                  names=[name for name, _ in campaign.spec.parameters],
                  combinations=_combinations(campaign, progress, output.resolve().parent))
    with private_files():
        output.write_text(html, encoding="utf-8", errors="backslashreplace")
    return output
