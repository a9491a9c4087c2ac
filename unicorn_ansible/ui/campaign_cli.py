"""What `unicorn-ansible sweep` (run a campaign's combinations) and `unicorn-ansible campaign`
(its progress, its report, its table) do; their options are declared in cli.py with the other
commands'. The work is the campaign package's; this is the command line around it, with
cli.py's helpers (imported when a command runs: cli.py imports this module)."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from ..campaign.parameters import parse_assignments, split_values
from ..campaign.start import Planned, left_to_run, plan_sweep, run_sweep
from ..campaign.store import campaign_names
from ..campaign.sweep import SweepSettings
from ..campaign.table import Campaign, eta_text, load_campaign
from ..node.shown import printable, printable_line
from .tables import console, print_table


@contextlib.contextmanager
def _watching(run_dir: Path, executors: list[str]) -> Iterator[Any]:
    """A run's live progress on stderr while it plays (as ``run`` shows it)."""
    from .progress import Progress

    with Progress(run_dir, executors, sys.stderr) as progress:
        yield progress.handle


def _say(line: str) -> None:
    click.echo(f"campaign: {printable_line(line)}", err=True)  # it may quote a run's error


def _given(parameters: Sequence[str]) -> dict[str, list[str]]:
    """``-p rate=10,20 -p size=1M`` as ``{"rate": ["10", "20"], "size": ["1M"]}``."""
    return {name: split_values(text, name) for name, text in parse_assignments(parameters).items()}


def sweep_command(experiment_file: str, inventories: Sequence[str], parameters: Sequence[str], name: str,
                  repeat: int, order: str, seed: int | None, retries: int, dry_run: bool, **engine: Any) -> None:
    """``unicorn-ansible sweep`` (its options: cli.py)."""
    from .cli import EXIT_FAILED, EXIT_OK, _inventory_reader, _load_for_the_run, _options, _secrets

    given = _given(parameters)
    secrets = None if dry_run else _secrets(engine)
    engine.pop("ask_become_pass", None)
    engine.pop("ask_pass", None)
    options = _options(**engine)
    _load_for_the_run()
    inventory = _inventory_reader(inventories)()
    planned = plan_sweep(experiment_file, given, name, repeat, inventory, order, seed)
    spec = planned.spec
    shape = " × ".join(f"{n} ({len(v)})" for n, v in spec.parameters if len(v) > 1) or "no parameter swept"
    seeded = f" (seed {planned.seed})" if order == "random" else ""
    click.echo(f"campaign {name}: {spec.count} runs: {shape}, {repeat} repeat(s); order {order}{seeded}", err=True)
    if dry_run:
        left = _listing(planned, order, retries)
        click.echo(f"{len(left)} run(s) would be made", err=True)
        sys.exit(EXIT_OK)
    settings = SweepSettings(order=order, seed=planned.seed, retries=retries, options=options, secrets=secrets)
    campaign, summary = run_sweep(planned, inventory, settings, _watching, _say)
    busy = f", {summary.busy} being run by another sweep" if summary.busy else ""
    click.echo(f"campaign {name}: {summary.done} of {spec.count} done, {summary.failed} failed, "
               f"{summary.pending} pending{busy} (this sweep made {summary.ran} run(s)); "
               f"see: unicorn-ansible campaign {name}", err=True)
    sys.exit(EXIT_FAILED if summary.failed else EXIT_OK)


def _listing(planned: Planned, order: str, retries: int) -> list[Any]:
    """Print what a sweep would run, in its order; return it."""
    left = left_to_run(planned, order, retries)
    names = [n for n, _ in planned.spec.parameters]
    print_table(("run", *names, "repeat"),
                [(run, *(c.parameters[n] for n in names), c.repeat) for run, c in left],
                f"campaign {planned.spec.name}: what is left, in order")
    return left


def campaign_command(name: str | None, as_json: bool, write_report: bool, output: str | None, as_csv: bool) -> None:
    """``unicorn-ansible campaign`` (its options: cli.py)."""
    if name is None:
        _list_campaigns(as_json)
        return
    loaded = load_campaign(name)
    if write_report:
        click.echo(f"report: {loaded.report(Path(output) if output else None)}")
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=loaded.columns(), lineterminator="\n")
        writer.writeheader()
        # a value is a host's text: quoted as CSV, its control characters escaped as in every view
        writer.writerows({k: printable(v) if isinstance(v, str) else v for k, v in row.items()} for row in loaded.rows())
    elif as_json:
        click.echo(json.dumps(loaded.progress(), indent=2))
    else:
        _show_progress(loaded)


def _list_campaigns(as_json: bool) -> None:
    rows = []
    for name in campaign_names():
        progress = load_campaign(name).progress()
        rows.append({key: progress[key] for key in ("name", "total", "done", "failed", "running", "pending")})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(("campaign", "runs", "done", "failed", "running", "pending"),
                [tuple(row.values()) for row in rows])


def _show_progress(loaded: Campaign) -> None:
    """Per combination of the parameters: its repeats done, failed, running, pending, its last
    error; then the totals with a bar (on a terminal) and the ETA."""
    progress = loaded.progress()
    names = [n for n, _ in loaded.spec.parameters]
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in progress["combinations"]:
        key = tuple(entry["parameters"][n] for n in names)
        group = groups.setdefault(key, {"done": 0, "failed": 0, "running": 0, "pending": 0, "error": ""})
        group[entry["status"]] += 1
        group["error"] = entry["error"] if entry["status"] == "failed" and entry["error"] else group["error"]
    rows = [(*key, g["done"], g["failed"], g["running"], g["pending"], g["error"][:200]) for key, g in groups.items()]
    out = console()
    print_table((*names, "done", "failed", "running", "pending", "error"), rows,
                f"campaign {loaded.name}: {loaded.spec.repeat} repeat(s) per combination", out)
    total, done = progress["total"], progress["done"]
    text = (f"{done}/{total} done, {progress['failed']} failed, {progress['running']} running, "
            f"{progress['pending']} pending; ETA {eta_text(progress['eta_seconds'])}")
    if out.is_terminal:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        line = Table.grid(padding=(0, 2))
        line.add_row(ProgressBar(total=total, completed=done + progress["failed"], width=40), text)
        out.print(line)
    else:
        out.print(text, markup=False, highlight=False)
