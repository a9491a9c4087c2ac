"""A campaign read back: its progress, and its results as one table.

``load_campaign(NAME)`` gives a :class:`Campaign`. ``rows()`` has one row per number a task
returned in the last run of each combination that ended (what ``results/measurements.py``
counts as a number: a numeric value, or the numeric fields of a dict or dataclass, one row
each), with the combination's parameters, its repeat and the run's name, and one row per
failed task or node with its failure text; ``frame()`` is the same as a pandas DataFrame.
``progress()`` says, per combination, whether it is done, failed, running or pending, and an
ETA from the runs so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.controller import is_alive
from ..engine.lifecycle import run_path
from ..errors import RunError
from ..results.load import VIEW_PAYLOAD_LIMIT, RunResults, load_results
from ..results.measurements import measurements
from .outcome import failed, failure_of, one_line
from .plan import Combination, combinations
from .records import CampaignSpec, CombinationState, CombinationStatus
from .store import CampaignDir

#: the table's columns after the parameters
COLUMNS = ("repeat", "run", "node", "task", "repetition", "field", "value", "error")


@dataclass(frozen=True)
class Entry:
    """A combination with its state, and how it stands now (``status``: done, failed, running,
    pending; a combination whose sweep died is pending again)."""

    combination: Combination
    state: CombinationState
    status: str

    @property
    def run(self) -> str | None:
        return self.state.runs[-1] if self.state.runs else None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.combination.index, "parameters": self.combination.parameters,
                "repeat": self.combination.repeat, "status": self.status, "attempts": self.state.attempts,
                "runs": list(self.state.runs), "run": self.run, "error": self.state.error,
                "seconds": self.state.seconds}


def _status(state: CombinationState) -> str:
    if state.status is CombinationStatus.RUNNING:
        alive = state.sweeper is not None and is_alive({"pid": state.sweeper[0], "start_time": state.sweeper[1]})
        return CombinationStatus.RUNNING.value if alive else CombinationStatus.PENDING.value
    return str(state.status.value)


class Campaign:
    """A campaign in the home folder: its spec, its combinations' states, its results."""

    def __init__(self, folder: CampaignDir, spec: CampaignSpec) -> None:
        self.folder = folder
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def entries(self) -> list[Entry]:
        """Every combination by number, with its state."""
        states = self.folder.states(self.spec)
        return [Entry(c, states[c.index], _status(states[c.index])) for c in combinations(self.spec)]

    def progress(self) -> dict[str, Any]:
        """Counts of done, failed, running and pending combinations, an ETA (seconds, from the
        mean time of the runs done so far and how many sweeps run at once), and every combination."""
        entries = self.entries()
        counts = {status.value: 0 for status in CombinationStatus}
        for entry in entries:
            counts[entry.status] += 1
        seconds = [e.state.seconds for e in entries if e.status == "done" and e.state.seconds is not None]
        mean = sum(seconds) / len(seconds) if seconds else None
        sweepers = {e.state.sweeper for e in entries if e.status == "running"}
        left = counts["pending"] + counts["running"]
        eta = None if mean is None else mean * left / max(1, len(sweepers))
        return {"name": self.name, "experiment": self.spec.experiment,
                "parameters": {name: list(values) for name, values in self.spec.parameters},
                "repeat": self.spec.repeat, "total": self.spec.count, **counts,
                "mean_seconds": mean, "eta_seconds": eta, "combinations": [e.to_json() for e in entries]}

    def runs(self) -> list[str]:
        """The run that counts of every combination that has one (its last), by number."""
        return [e.run for e in self.entries() if e.run]

    def ended(self) -> list[tuple[Entry, RunResults | None]]:
        """Each combination that is done or failed, with its last run's results (None: it has none)."""
        ended = []
        for entry in self.entries():
            if entry.status not in ("done", "failed"):
                continue
            ended.append((entry, self._results(entry.run)))
        return ended

    @staticmethod
    def _results(run: str | None) -> RunResults | None:
        if run is None or not run_path(run).exists():
            return None
        try:
            return load_results(run_path(run).path, payload_limit=VIEW_PAYLOAD_LIMIT)
        except RunError:
            return None

    def columns(self) -> list[str]:
        return [name for name, _ in self.spec.parameters] + list(COLUMNS)

    def rows(self) -> list[dict[str, Any]]:
        """The campaign's results as rows (see the module's docstring), without pandas."""
        rows = []
        for entry, results in self.ended():
            base = {**entry.combination.parameters, "repeat": entry.combination.repeat, "run": entry.run}
            rows += [{**base, **row} for row in result_rows(results, entry.state)]
        return rows

    def frame(self) -> Any:
        """:meth:`rows` as a pandas DataFrame: a column per parameter, then repeat, run, node,
        task, repetition, field, value, error."""
        try:
            import pandas
        except ImportError as exc:
            raise ImportError("Campaign.frame needs pandas (pip install pandas); "
                              "Campaign.rows() gives the same rows as a list of dicts") from exc
        return pandas.DataFrame(self.rows(), columns=self.columns())

    def report(self, output: Path | None = None) -> Path:
        """Write the campaign's HTML report (default: in its folder); return its path."""
        from ..ui.campaign_report import write_campaign_report

        return write_campaign_report(self, Path(output) if output else self.folder.report_file)

    def __repr__(self) -> str:
        progress = self.progress()
        return (f"<Campaign {self.name}: {progress['done']} of {progress['total']} done, {progress['failed']} failed, "
                f"{progress['running']} running, {progress['pending']} pending>")


def result_rows(results: RunResults | None, state: CombinationState) -> list[dict[str, Any]]:
    """One run's rows (without the combination's columns): its measurements, then a row per
    failed task result and per failed node without one, with the failure text; a combination
    without results, one row with its error."""
    empty: dict[str, object] = {"node": None, "task": None, "repetition": None, "field": None, "value": None,
                                "error": None}
    if results is None:
        return [{**empty, "error": state.error or "no run"}]
    rows = [{**empty, **row} for row in measurements(results)]
    for node in results:
        failures = [{**empty, "node": node.executor_id, "task": task, "repetition": repetition,
                     "error": failure_of(result)}
                    for task, runs in node.tasks.items() for repetition, result in enumerate(runs)
                    if failed(result)]
        if not failures and not node.success:
            failures = [{**empty, "node": node.executor_id, "error": one_line(f"{node.status}: {node.error or ''}")}]
        rows += failures
    return rows


def load_campaign(name: str) -> Campaign:
    """The campaign ``name`` of the home folder (a UsageError if there is none)."""
    folder = CampaignDir.named(name)
    return Campaign(folder, folder.spec())


def eta_text(seconds: float | None) -> str:
    """An ETA as a person reads it: ``0:04:10``, or ``unknown`` before any run is done."""
    return "unknown" if seconds is None else time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 \
        else f"{seconds / 86400:.1f} days"
