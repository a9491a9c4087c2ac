"""The sweep: every combination of a campaign run as an ordinary run, resumable and shareable.

As execo's ParamSweeper does for its combinations, a sweep process takes the next combination
that is neither done nor failed for good, runs it and records the outcome; the combination's
state is its file in the campaign's folder, written whole after every step, so a sweep that
dies (Ctrl-C, kill -9, a reboot) loses nothing, and the same command started again goes on
with what is not done. A combination's lock (store.py) is held while its run plays: a second
sweep process on the same campaign takes other combinations, never the same one.

A combination's run is made by the lifecycle like any run (``run_experiment``: named
``NAME-0001``, its parameters in its record). What a sweep finds of a combination's last run
when it picks the combination up decides what it does (:func:`left_run`):

* none, or one never started (killed while compiling): that run is made again, same name;
* one whose controller died while it played (kill -9): it is collected, as ``collect`` does,
  so pipelines still running on the hosts are waited for and none is started twice;
* one that its own controller cancelled on a stop signal (Ctrl-C, SIGTERM): run again under a
  new name, not counted as a failure;
* one that ended: judged: done when every node succeeded, else a failed attempt; a
  combination is tried ``retries`` times more before it is marked failed with its error.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from ..compiler.settings import CompileOptions
from ..engine import lifecycle
from ..engine.controller import this_controller
from ..engine.rundir import RunDir, RunStatus, executors
from ..errors import ExperimentError, InventoryError, RunError, UnicornError, UsageError
from ..inventory import Inventory
from ..model.experiment import Experiment
from ..results.load import VIEW_PAYLOAD_LIMIT, load_results
from .outcome import failure_text, one_line
from .parameters import Value
from .plan import Combination, combinations, ordered, run_name
from .records import CampaignSpec, CombinationState, CombinationStatus
from .store import CampaignDir

EventHandler = Callable[[dict[str, object]], None]
#: shows a run's progress while it plays: given its folder and executors, yields its event handler
Watch = Callable[[Path, list[str]], AbstractContextManager[EventHandler | None]]
#: an experiment for a combination's parameters
Build = Callable[[dict[str, Value]], Experiment]


class Left(enum.Enum):
    """What a combination's last run is, to a sweep picking the combination up."""

    NONE = "none"                 # no run, or one never started: make it (again)
    PLAYING = "playing"           # a live controller plays it: not ours to touch
    ORPHANED = "orphaned"         # its controller died while it played: collect it
    INTERRUPTED = "interrupted"   # its own controller cancelled it on a stop signal: run anew
    ENDED = "ended"               # it ended: judge it


def left_run(run: RunDir) -> Left:
    """What ``run`` (a combination's last run) is: see the module's docstring."""
    try:
        record = run.record() if run.exists() else None
    except RunError:
        record = None
    status = (record or {}).get("status")
    if record is None or status in (RunStatus.COMPILED.value, RunStatus.READY.value) or \
            (status == RunStatus.PREPARING.value and not lifecycle.is_playing(record)):
        return Left.NONE
    if lifecycle.is_playing(record):
        return Left.PLAYING
    if lifecycle.controller_died(record):
        return Left.ORPHANED
    canceller = record.get("canceller")
    if "cancel_requested" in record and canceller and canceller == record.get("controller"):
        return Left.INTERRUPTED
    return Left.ENDED


@dataclass(frozen=True)
class SweepSettings:
    """How a sweep process runs a campaign: the order it takes combinations in, how many
    times a failed one is tried again, the engine's options and passwords for each run."""

    order: str = "random"
    seed: int | None = None
    retries: int = 1
    options: CompileOptions | None = None
    secrets: lifecycle.Secrets | None = None


@dataclass(frozen=True)
class SweepSummary:
    """What one sweep process did, and how the campaign stands after it."""

    ran: int
    done: int
    failed: int
    pending: int
    busy: int


class SweepStopped(RunError):
    """A stop signal (Ctrl-C, SIGTERM) ended the sweep; the combination it ran stays to run."""


def _no_watch(run_dir: Path, names: list[str]) -> AbstractContextManager[EventHandler | None]:
    return contextlib.nullcontext(None)


class Sweeper:
    """One sweep process over one campaign (its folder and spec, made or checked already)."""

    def __init__(self, folder: CampaignDir, spec: CampaignSpec, build: Build, inventory: Inventory,
                 settings: SweepSettings, watch: Watch | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.folder, self.spec, self.build, self.inventory = folder, spec, build, inventory
        self.settings = settings
        self.watch = watch or _no_watch
        self.say = say or (lambda line: None)
        self.order = ordered(combinations(spec), settings.order, settings.seed)
        self.me = this_controller()

    # -- what is left, in order --------------------------------------------------------
    def eligible(self, state: CombinationState) -> bool:
        """Whether a combination is still to run: not done, and not failed more than ``retries`` times."""
        return state.status is not CombinationStatus.DONE and state.attempts <= self.settings.retries

    def to_run(self, busy: set[int] | None = None) -> list[Combination]:
        """The combinations still to run, in the sweep's order, those tried least first."""
        states = self.folder.states(self.spec)
        left = [c for c in self.order if c.index not in (busy or ()) and self.eligible(states[c.index])]
        return sorted(left, key=lambda c: states[c.index].attempts)  # stable: the order within

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> SweepSummary:
        """Run what is left until nothing is (or only combinations other processes hold)."""
        busy: set[int] = set()
        ran = 0
        while True:
            left = self.to_run(busy)
            if not left:
                break
            combination = left[0]
            with self.folder.claimed(self.spec, combination.index) as mine:
                if not mine:
                    busy.add(combination.index)
                    continue
                played = self._take(combination)
            if played is None:
                busy.add(combination.index)
            else:
                ran += played
        return self.summary(ran, busy)

    def summary(self, ran: int, busy: set[int]) -> SweepSummary:
        states = self.folder.states(self.spec).values()
        done = sum(1 for s in states if s.status is CombinationStatus.DONE)
        failed = sum(1 for s in states if s.status is CombinationStatus.FAILED and not self.eligible(s))
        return SweepSummary(ran, done, failed, self.spec.count - done - failed, len(busy))

    # -- one combination, under its lock -----------------------------------------------
    def _take(self, combination: Combination) -> int | None:
        """Bring one combination forward (its lock held): the runs played, or None when it is
        not this process's to run (another controller plays its run)."""
        state = self.folder.state(self.spec, combination.index)  # as it is now, under the lock
        if not self.eligible(state):
            return 0
        if state.status is CombinationStatus.RUNNING and state.runs:
            run = lifecycle.run_path(state.runs[-1])
            left = left_run(run)
            if left is Left.PLAYING:
                return None
            if left is Left.ORPHANED:
                self.say(f"{run.name}: its sweep died while it ran; collecting it ({combination.shown()})")
                self._settle(combination, state, self._collect(run))
                return 1
            if left is Left.ENDED:
                self._settle(combination, state, self._ended(run))
                return 0
            if left is Left.NONE:
                return self._play(combination, state, state.runs[-1], state.runs)
        name = run_name(self.spec, combination.index, len(state.runs) + 1)
        return self._play(combination, state, name, (*state.runs, name))

    def _play(self, combination: Combination, state: CombinationState, name: str, runs: tuple[str, ...]) -> int:
        try:
            experiment = self.build(combination.parameters)
        except InventoryError:
            raise
        except (ExperimentError, UnicornError) as exc:
            self._settle(combination, state, (False, one_line(str(exc))), runs=state.runs)
            return 0
        started = replace(state, status=CombinationStatus.RUNNING, runs=runs, started=time.time(), finished=None,
                          sweeper=(self.me["pid"], self.me["start_time"] or 0))
        self.folder.save(self.spec, started)
        self.say(f"{name}: {combination.shown()}  ({self._position()})")
        run = lifecycle.run_path(name)
        try:
            with self.watch(run.path, [d.executor_id or d.node.name for d in experiment]) as handler:
                lifecycle.run_experiment(experiment, self.inventory, name, replace=name in state.runs,
                                         options=self.settings.options, event_handler=handler,
                                         secrets=self.settings.secrets, payload_limit=VIEW_PAYLOAD_LIMIT,
                                         parameters=dict(combination.parameters))
        except Exception as exc:
            if left_run(run) is Left.INTERRUPTED:
                self.folder.save(self.spec, replace(started, status=CombinationStatus.PENDING, sweeper=None))
                raise SweepStopped(f"{exc}; run the same sweep command again to go on with the campaign") from exc
            ours = run.exists() and not isinstance(exc, UsageError)  # (not a taken name: a run of someone else's)
            outcome = self._ended(run) if ours else (False, one_line(f"{type(exc).__name__}: {exc}"))
            self._settle(combination, started, outcome)
            return 1
        self._settle(combination, started, self._ended(run))
        return 1

    def _collect(self, run: RunDir) -> tuple[bool, str | None]:
        try:
            with self.watch(run.path, list(executors(run.record()))) as handler:
                lifecycle.collect(run, self.inventory, event_handler=handler)
        except UnicornError as exc:
            return False, one_line(f"collecting {run.name} failed: {exc}")
        return self._ended(run)

    @staticmethod
    def _ended(run: RunDir) -> tuple[bool, str | None]:
        """An ended run's verdict: whether it succeeded, and why not."""
        results = load_results(run.path, payload_limit=VIEW_PAYLOAD_LIMIT)
        return results.success, failure_text(results, run.record())

    def _settle(self, combination: Combination, state: CombinationState, outcome: tuple[bool, str | None],
                runs: tuple[str, ...] | None = None) -> None:
        success, error = outcome
        runs = state.runs if runs is None else runs
        if success:
            settled = replace(state, status=CombinationStatus.DONE, runs=runs, error=None, finished=time.time(),
                              sweeper=None)
            self.say(f"{runs[-1]}: done")
        else:
            attempts = state.attempts + 1
            final = attempts > self.settings.retries
            settled = replace(state, status=CombinationStatus.FAILED if final else CombinationStatus.PENDING,
                              attempts=attempts, runs=runs, error=error or "failed", finished=time.time(),
                              sweeper=None)
            again = "marked failed" if final else "to be tried again"
            self.say(f"{runs[-1] if runs else combination.shown()}: failed ({attempts} of "
                     f"{self.settings.retries + 1} attempts, {again}): {error}")
        self.folder.save(self.spec, settled)

    def _position(self) -> str:
        states = self.folder.states(self.spec).values()
        done = sum(1 for s in states if s.status is CombinationStatus.DONE)
        return f"{done} of {self.spec.count} done"

