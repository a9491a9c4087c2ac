"""Drivers: who plays a run's playbooks on a group of its hosts.

A run's steps (deploy, execute, cancel, collect: engine/lifecycle.py) play a playbook on a set
of host groups, each played by a driver (``Driver``: ``play``, ``cancel``, ``close``). Today one
driver exists, ``LocalRunner`` (ansible-runner in this process, ansible-playbook a child of it),
and it plays every host: one group. Whoever drives, every result lands in the one run folder
(``nodes/<executor>/``, written by the collector callback and the role's fetch), so results
merge per node; the flag store is one per run, served by the controller around the execution
(engine/flag_server.py); each host's connection says how it is reached (connections/).

**Site workers (issue 23) as the second driver.** A ``WorkerDriver`` would play the group of
hosts whose ``unicorn_worker`` names one worker host, with ansible-runner's streaming protocol,
the one AWX's execution nodes run:

    transmit (this process: a shard of the run folder, only its hosts' files)
      | ssh WORKER <unicorn_worker_python> -m ansible_runner worker
      | process (this process: the same event handler, status handler, artifacts handler)

- ``play``: ``ansible_runner.run(streamer="transmit")`` into the ssh link's stdin, its stdout into
  ``ansible_runner.run(streamer="process")``; rc from the processed status; the limit is the
  group's hosts. Groups play at once, one thread each (``play_groups``), so deployment ends on
  every shard before any starts only if the step plays deploy and start as two plays.
- ``cancel``: a cancel play streamed through the same worker (the stream itself cannot be
  signalled); ``close``: the worker's SSH masters and folders, its forwarded agent, the link.
- its hosts' connection kind (connections/, ``worker``): flag reach through two hops (``ssh -R
  SOCK:SOCK`` to the worker, the worker's ssh ``RemoteForward`` to each host), files fetched into
  the worker's ``artifacts/<ident>/`` and home in the stream (``FetchRoute.STREAM``), then placed
  in ``nodes/<executor>/`` by the processor's artifacts handler, as the local collector places them.
"""

from __future__ import annotations

import json
import shlex
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..connections import HostConnections
from ..home import private_files
from ..inventory import Inventory, ensure_ansible_on_path
from .controller import controller_env
from .privacy import scrub_once_started, scrub_runner_records
from .rundir import RunDir

if TYPE_CHECKING:  # ansible-runner ships no hints; named for the reader
    from ansible_runner.runner import Runner

__all__ = ["Driver", "Event", "EventHandler", "HostGroup", "LocalRunner", "PlayOptions", "Secrets",
           "close_groups", "local_groups", "play_groups"]

#: what an event handler gets: one of ansible-runner's events
Event = dict[str, object]
EventHandler = Callable[[Event], None]

#: how often a running play looks for a cancel or a stop signal
STOP_CHECK_SECONDS = 1


@dataclass(frozen=True)
class Secrets:
    """Passwords typed by the user. They go to Ansible's prompts through ansible-runner's
    pexpect answers only: never into a file, an environment variable or a log."""

    become_password: str | None = field(default=None, repr=False)
    connection_password: str | None = field(default=None, repr=False)

    def runner_arguments(self) -> dict[str, str | dict[str, str]]:
        flags: list[str] = []
        answers: dict[str, str] = {}
        if self.become_password is not None:
            flags.append("--ask-become-pass")
            answers[r"^BECOME password.*:\s*?$"] = self.become_password
        if self.connection_password is not None:
            flags.append("--ask-pass")
            answers[r"^SSH password:\s*?$"] = self.connection_password
        return {"cmdline": " ".join(flags), "passwords": answers} if flags else {}


@dataclass(frozen=True)
class PlayOptions:
    """What one play of a step gives every driver."""

    event_handler: EventHandler | None = None
    secrets: Secrets | None = None
    #: asked every second: True stops the play (its processes and their SSH sessions)
    should_stop: Callable[[], bool] | None = None
    #: variables over every other (Ansible's -e)
    extra_vars: Mapping[str, object] = field(default_factory=dict)
    #: the step serves the flag store: connections carry its tunnel (deploy, execute; not cancel, collect)
    tunnel: bool = True
    #: hosts to play on within the group (None: all of them)
    limit: Sequence[str] | None = None


class Driver(Protocol):
    """Plays playbooks of one run on a group of its hosts."""

    def play(self, playbook: str, hosts: Sequence[str] | None, options: PlayOptions) -> int:
        """Play ``playbook`` (a file of the run's project) on ``hosts`` (None: every host of the run);
        return ansible-playbook's exit code. Results go into the run folder as the play goes."""
        ...

    def cancel(self) -> None:
        """Stop the play in progress (from another thread); ``play`` then returns."""
        ...

    def close(self) -> None:
        """End what the driver's plays left open (SSH masters, links); it plays no more."""
        ...


@dataclass(frozen=True)
class HostGroup:
    """Hosts one driver plays (``hosts`` None: every host of the run)."""

    driver: Driver
    hosts: tuple[str, ...] | None = None

    def hosts_of(self, limit: Sequence[str] | None) -> list[str] | None:
        """The group's hosts within ``limit`` (None: no limit: the group's own hosts)."""
        if limit is None:
            return None if self.hosts is None else list(self.hosts)
        return list(limit) if self.hosts is None else [host for host in limit if host in self.hosts]


class LocalRunner:
    """ansible-runner in this process: ansible-playbook a child of the controller, its connections
    those of each host (connections/), opened in what their ``step_vars`` prepared."""

    def __init__(self, run: RunDir, inventory: Inventory, connections: HostConnections) -> None:
        self.run, self.inventory, self.connections = run, inventory, connections
        self._cancelled = threading.Event()

    def play(self, playbook: str, hosts: Sequence[str] | None, options: PlayOptions) -> int:
        extra_vars = {**self.connections.step_vars(self.run, options.tunnel), **options.extra_vars}
        stop = options.should_stop

        def should_stop() -> bool:
            return self._cancelled.is_set() or bool(stop and stop())

        return _run_playbook(self.run, playbook, self.inventory, options.event_handler, options.secrets, hosts,
                             should_stop, extra_vars)

    def cancel(self) -> None:
        self._cancelled.set()

    def close(self) -> None:
        self.connections.close(self.run)


def local_groups(run: RunDir, inventory: Inventory, hosts: Sequence[str]) -> list[HostGroup]:
    """The run's host groups: today one, every host played by this process's ansible-runner."""
    return [HostGroup(LocalRunner(run, inventory, HostConnections.of(inventory, hosts)))]


def play_groups(groups: Sequence[HostGroup], playbook: str, options: PlayOptions) -> int:
    """Play ``playbook`` on every group at once (one thread per group beyond the first); the exit
    code of the first group that failed, else 0. A group the limit leaves empty is not played."""
    jobs = [(group, group.hosts_of(options.limit)) for group in groups]
    jobs = [(group, hosts) for group, hosts in jobs if hosts is None or hosts]
    codes: dict[int, int] = {}

    def play(index: int, group: HostGroup, hosts: list[str] | None) -> None:
        codes[index] = group.driver.play(playbook, hosts, options)

    threads = [threading.Thread(target=play, args=(index, *job), name=f"unicorn-driver-{index}", daemon=True)
               for index, job in enumerate(jobs[1:], start=1)]
    for thread in threads:
        thread.start()
    try:
        if jobs:
            play(0, *jobs[0])
    finally:
        for thread in threads:
            thread.join()
    return next((code for _, code in sorted(codes.items()) if code), 0)


def close_groups(groups: Sequence[HostGroup]) -> None:
    for group in groups:
        group.driver.close()


# -- ansible-runner -------------------------------------------------------------------------------

def _run_playbook(run: RunDir, playbook: str, inventory: Inventory, event_handler: EventHandler | None,
                  secrets: Secrets | None, limit: Sequence[str] | None, should_stop: Callable[[], bool],
                  extra_vars: Mapping[str, object]) -> int:
    """Run one of the run directory's playbooks with ansible-runner (on the ``limit`` hosts only,
    if given); return its exit code. ``should_stop`` is asked every second: True kills
    ansible-playbook with its workers and their SSH sessions (its process group)."""
    ensure_ansible_on_path()
    from ansible_runner.interface import init_runner

    # suppress_env_files: ansible-runner would otherwise write passwords to env/passwords;
    # envvars: ansible-playbook ends with this controller (engine/controller.py)
    kwargs: dict[str, object] = {"suppress_env_files": True, "envvars": controller_env(),
                              "status_handler": scrub_once_started(run.path)}
    kwargs.update((secrets or Secrets()).runner_arguments())
    if extra_vars:
        kwargs["cmdline"] = f"{kwargs.get('cmdline', '')} -e {shlex.quote(json.dumps(dict(extra_vars)))}".strip()
    if inventory.sources:
        kwargs["inventory"] = list(inventory.sources)
    if limit is not None:
        kwargs["limit"] = ",".join(limit)
    try:
        with private_files():
            runner = init_runner(
                private_data_dir=str(run.path),
                playbook=playbook,
                quiet=True,
                event_handler=(lambda event: (event_handler(event), True)[1]) if event_handler else None,
                cancel_callback=should_stop,
                settings={"pexpect_timeout": STOP_CHECK_SECONDS},
                **kwargs,
            )
            _closing_ended_plays_at_once()(runner)
    finally:
        scrub_runner_records(run.path)
    return int(runner.rc if runner.rc is not None else 1)


_runner_run: Callable[[Runner], None] | None = None


def _closing_ended_plays_at_once() -> Callable[[Runner], None]:
    """ansible-runner's ``Runner.run`` for our plays only, whose ansible-playbook terminal is closed
    without pexpect's pause once the play has exited.

    ansible-runner closes the terminal once ansible-playbook has exited and its output is read
    to the end; pexpect's close then sleeps 0.1 s (``delayafterclose``, for a child that may still
    be ending) before it looks whether the child lives: 0.1 s of every play. Our copy of
    ``Runner.run`` sees a ``pexpect`` whose ``spawn`` closes a child known to have exited at once
    (one that lives is closed as before). Nothing else changes: pexpect, ansible-runner and every
    other user of them in this process (a notebook's) keep their own."""
    global _runner_run
    if _runner_run is None:
        import ansible_runner.runner

        run = ansible_runner.runner.Runner.run
        names = dict(run.__globals__, pexpect=_pexpect_closing_at_once())
        _runner_run = types.FunctionType(run.__code__, names, run.__name__, run.__defaults__, run.__closure__)
    return _runner_run


def _pexpect_closing_at_once() -> types.ModuleType:
    """``pexpect`` as our copy of ``Runner.run`` sees it: pexpect's own names, our ``spawn``."""
    import pexpect as real

    class Child(real.spawn):  # type: ignore[misc]
        def close(self, force: bool = True) -> None:
            if not self.isalive():  # reaped already (ansible-runner's loop ran while it lived)
                self.ptyproc.delayafterclose = 0
            super().close(force=force)

    class OurPexpect(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

    ours = OurPexpect(real.__name__, real.__doc__)
    ours.spawn = Child  # type: ignore[attr-defined]
    return ours

