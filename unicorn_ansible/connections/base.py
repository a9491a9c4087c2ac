"""What every connection kind says about itself: the interface the compiler and the engine ask.

A connection is how Ansible reaches one inventory host (``ansible_connection``). Each kind is
one small class (``local``, ``ssh``, ``paramiko``, ``containers``); the run asks the class of a
host's connection, never the connection's name:

- **how the run reaches the host**: the Ansible settings the run's ``ansible.cfg`` and
  environment carry for it (``ansible_settings``) and the variables each step's play gets
  (``step_vars``);
- **whether the run's flag store can be reached from the host** (``flag_reach``): the
  controller's socket itself, a reverse tunnel each connection carries, or not at all; a run
  whose pipelines use flags on a host whose connection cannot reach the store is refused at
  prepare (``cannot_reach_store``);
- **how masters are opened and closed**: opened by Ansible as the step connects, in what
  ``step_vars`` prepared; closed by ``close`` when the step ends;
- **how files come home** (``fetch_route``): the connection plugin's own transfer, as the
  role's ``unicorn_fetch`` does it (ansible/fetch_action.py).

A site worker (issue 23) will be one more kind: a host driven by ``ansible-runner worker`` on
another machine, whose flag store is reached by a tunnel of two hops and whose files come home
in the worker's stream (``FetchRoute.STREAM``); see engine/drivers.py.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import ClassVar

from ..ansible.routes import FetchRoute
from ..engine.flag_server import FlagEndpoint, FlagReach
from ..engine.rundir import RunDir

__all__ = ["Connection", "FetchRoute", "Setting"]

#: one Ansible setting: (ansible.cfg section, key, environment variable, value)
Setting = tuple[str, str, str, str]


@dataclass(frozen=True)
class Connection(ABC):
    """One host's connection kind; ``name`` is the inventory's ``ansible_connection`` ("" unset)."""

    name: str
    #: the kind's short name, as errors and the report name it
    kind: ClassVar[str]
    #: the ``ansible_connection`` values that choose this kind
    names: ClassVar[frozenset[str]] = frozenset()
    flag_reach: ClassVar[FlagReach] = FlagReach.NONE
    fetch_route: ClassVar[FetchRoute] = FetchRoute.CONNECTION
    #: why the store cannot be reached and what to do instead (kinds whose reach is NONE)
    store_fix: ClassVar[str] = ("reach the host with ansible_connection=ssh (OpenSSH carries the run's flag tunnel), "
                                "or leave flags out of its pipeline")

    @property
    def label(self) -> str:
        """The connection as the inventory names it (the kind when it names none)."""
        return self.name or self.kind

    def ansible_settings(self, flags: FlagEndpoint | None) -> list[Setting]:
        """The run-wide Ansible settings this kind needs (``flags``: the run's store endpoint)."""
        return []

    def step_vars(self, run: RunDir, tunnel: bool) -> dict[str, str]:
        """Variables a step's play gets for this kind; ``tunnel``: the step serves the flag store."""
        return {}

    def close(self, run: RunDir) -> int:
        """End what a step of ``run`` left open for this kind (its masters); how many were asked."""
        return 0

    def cannot_reach_store(self, node: str) -> str | None:
        """The one-line refusal for a flag-using pipeline on ``node``, None if the store is reachable."""
        if self.flag_reach is not FlagReach.NONE:
            return None
        return (f"node {node} uses flags, but its connection ({self.label}) cannot reach the run's flag store "
                f"(Ansible opens no tunnel over it); {self.store_fix}")
