"""Live progress of a run: one row per node and an overall bar on a terminal,
plain timestamped lines (one per change) anywhere else.

Progress comes from the run folder: the callback plugin writes each node's
phase and the executor's progress (stage, tasks done) to the node's status file
(``RunDir.node_status``, a NodeStatusRecord) while the pipeline runs; this reads those files
twice a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from ..engine.rundir import RunDir
from ..node.shown import printable_line
from ..node.wire import ExecutorState, NodeStatusRecord
from ..results.status import FINAL_PHASES, Phase
from .colours import TERMINAL_COLOURS

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Group
    from rich.live import Live

#: how a final phase (as a person reads it, FINAL_PHASES) is shown on a terminal
_COLOURS = TERMINAL_COLOURS


def describe(status: NodeStatusRecord | Mapping[str, object]) -> tuple[str, int, int]:
    """A node's phase as a person reads it, with tasks done and total (0: not known in advance).
    ``status``: the record, or a status as JSON (read as a run folder's record is)."""
    if not isinstance(status, NodeStatusRecord):
        status = NodeStatusRecord.from_untrusted(dict(status), "a node's status", lenient=True)
    phase = status.phase or "waiting"
    progress = status.progress
    done, total = (progress.done or 0, known_total(progress)) if progress is not None else (0, 0)
    if phase in FINAL_PHASES:
        label = FINAL_PHASES[Phase(phase)]
        if phase == Phase.EXECUTED and progress is not None and progress.failed:
            label = "done, with failed tasks"
        return label, done, total
    if phase == Phase.RUNNING and progress is not None and progress.stages:
        return f"running stage {progress.stage or 0} of {progress.stages}", done, total
    if phase == Phase.DEPLOYED:
        notice = deploy_notice(status)
        return (f"deployed; {NOTICE}{notice}" if notice else "deployed"), done, total
    return phase, done, total


#: how a line about a node's deployment notice begins
NOTICE = "notice: "


def deploy_notice(status: NodeStatusRecord) -> str | None:
    """What the host said of how it deployed the node (e.g. a DockerImage run as shell: node/container.py)."""
    return status.deploy.notice if status.deploy else None


def known_total(progress: ExecutorState | None) -> int:
    """How many tasks a node runs, where that is known in advance (0 where not): a graph's loops
    and branches (a CyclePipeline's cycles) decide as it runs."""
    if progress is None or progress.shape == "graph":
        return 0
    return progress.total or 0


def tasks_text(done: int, total: int) -> str:
    """``3/9``, or ``20`` where the total is not known in advance, or nothing before any task."""
    return f"{done}/{total}" if total else (str(done) if done else "")


class Progress:
    """Shows a run's progress while it runs: ``with Progress(run_dir, hosts, stream): ...``."""

    def __init__(self, run_dir: Path, hosts: list[str], stream: IO[str], interval: float = 0.5) -> None:
        self.run_dir = Path(run_dir)
        self.hosts = list(hosts)
        self.stream = stream
        self.interval = interval
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self._seen: dict[str, tuple[str, int, int]] = {}
        #: nodes whose deployment notice is yet to be shown, and those whose notice was shown
        self._notices: dict[str, str] = {}
        self._noticed: set[str] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._live_display: Live | None = None

    # -- reading ---------------------------------------------------------------
    def snapshot(self) -> dict[str, tuple[str, int, int]]:
        run = RunDir(self.run_dir)
        described = {}
        for host in self.hosts:
            status = run.node_status(host)
            described[host] = describe(status)
            notice = deploy_notice(status)
            if notice and host not in self._noticed:
                self._notices[host] = notice
        return described

    # -- showing -----------------------------------------------------------------
    def lines(self, snapshot: dict[str, tuple[str, int, int]]) -> list[str]:
        """Plain lines for the nodes whose phase changed since the last call."""
        out = []
        stamp = time.strftime("%H:%M:%S")
        for host, (label, done, total) in snapshot.items():
            notice = self._notices.pop(host, None)
            if notice is not None:  # said once, though the node was past "deployed" when this looked
                self._noticed.add(host)
                if NOTICE not in label:
                    out.append(printable_line(f"{stamp} {host}: deployed; {NOTICE}{notice}"))
            if self._seen.get(host, ("", -1, -1))[0] != label:
                text = tasks_text(done, total)
                tasks = f" ({text} tasks)" if text else ""
                out.append(printable_line(f"{stamp} {host}: {label}{tasks}"))  # a label may quote a host
            self._seen[host] = (label, done, total)
        return out

    def renderable(self, snapshot: dict[str, tuple[str, int, int]]) -> Group:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(printable_line(f"run {self.run_dir.name}")), expand=False)
        for column in ("node", "phase", "tasks"):
            table.add_column(column)
        finished = 0
        for host, (label, done, total) in snapshot.items():
            colour = _COLOURS.get(label.split(",")[0])  # "done, with failed tasks" is done
            table.add_row(Text(printable_line(host)), Text(printable_line(label), style=colour or ""),
                          tasks_text(done, total))
            finished += colour is not None
        bar = ProgressBar(total=max(len(snapshot), 1), completed=finished, width=40)
        summary = Table.grid()
        summary.add_row(bar, f"  {finished}/{len(snapshot)} node(s) finished")
        return Group(table, summary)

    def refresh(self) -> None:
        snapshot = self.snapshot()
        if self._live_display is not None:
            self._live_display.update(self.renderable(snapshot))
        else:
            for line in self.lines(snapshot):
                print(line, file=self.stream, flush=True)

    # -- lifetime ------------------------------------------------------------------
    def handle(self, event: Mapping[str, object]) -> None:
        """ansible-runner event handler: refresh soon after anything happens."""
        if str(event.get("event", "")).startswith("runner_on_"):
            self._wake.set()

    def _loop(self) -> None:
        """Refresh every ``interval``, sooner after an event, but never in more than a fifth of the
        time: a refresh reads every node's status file (~0.3 ms per node), and 300 nodes send events
        faster than that; the display must not take the processor from Ansible's workers."""
        while not self._stop.is_set():
            began = time.monotonic()
            self.refresh()
            self._stop.wait(max(self.interval / 5, 4 * (time.monotonic() - began)))
            self._wake.wait(self.interval)
            self._wake.clear()

    def start(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live_display = Live(self.renderable(self.snapshot()), console=Console(file=self.stream),
                                      refresh_per_second=4, transient=False)
            self._live_display.start()
        self._thread = threading.Thread(target=self._loop, name="unicorn-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.refresh()
        if self._live_display is not None:
            self._live_display.stop()
            self._live_display = None

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
