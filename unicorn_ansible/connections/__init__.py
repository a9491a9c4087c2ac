"""Connections: how the run reaches each inventory host, one small class per kind (base.py says
what each tells). The compiler and the engine ask a host's connection; nothing else looks at
``ansible_connection``.

    local        the controller itself: the flag store's socket; no masters
    ssh          OpenSSH: the run's masters in its private control folder, the flag tunnel
    paramiko     paramiko_ssh: no masters, no tunnel (flags refused at prepare)
    docker       community.docker: docker exec/cp; no tunnel (flags refused at prepare)
    podman       containers.podman: podman exec/cp; no tunnel (flags refused at prepare)
    other        any other plugin (winrm, lxd, ...): nothing assumed (flags refused at prepare)
    (worker)     issue 23's site workers: the next kind (engine/drivers.py says how it fits)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from ..engine.flag_server import FlagEndpoint, FlagReach
from ..engine.rundir import RunDir
from ..inventory import Inventory
from .base import Connection, FetchRoute, Setting
from .containers import Docker, Podman
from .local import Local
from .paramiko import Paramiko
from .ssh import Ssh, ssh_args

__all__ = ["Connection", "Docker", "FetchRoute", "FlagReach", "HostConnections", "Local", "Other", "Paramiko",
           "Podman", "Setting", "Ssh", "connection_named", "ssh_args"]

#: the inventory variable that names a host's connection
CONNECTION_VAR = "ansible_connection"


@dataclass(frozen=True)
class Other(Connection):
    """A connection plugin this package knows nothing of: no settings, no masters, no flag store."""

    kind: ClassVar[str] = "other"
    store_fix: ClassVar[str] = ("flags reach hosts over the ssh and local connections only; use one of them "
                                "for this host, or leave flags out of its pipeline")


KINDS: tuple[type[Connection], ...] = (Local, Ssh, Paramiko, Docker, Podman)
_BY_NAME = {name: kind for kind in KINDS for name in kind.names}


def connection_named(name: str) -> Connection:
    """The connection kind of an ``ansible_connection`` value (a plugin's name, short or in full)."""
    name = name.strip()
    return _BY_NAME.get(name, Other)(name)


@dataclass(frozen=True)
class HostConnections:
    """The connection of each of a run's hosts, and what the run needs of them together."""

    by_host: Mapping[str, Connection]

    @classmethod
    def of(cls, inventory: Inventory, hosts: Iterable[str]) -> HostConnections:
        """Each host's connection as the inventory names it (its host and group variables)."""
        return cls({host: connection_named(str(inventory.hostvars.get(host, {}).get(CONNECTION_VAR) or ""))
                    for host in hosts})

    def __getitem__(self, host: str) -> Connection:
        return self.by_host[host]

    def kinds(self) -> list[Connection]:
        """One connection of each kind the hosts use, in the order of their first host."""
        first: dict[type[Connection], Connection] = {}
        for connection in self.by_host.values():
            first.setdefault(type(connection), connection)
        return list(first.values())

    def reach(self, reach: FlagReach) -> bool:
        """Whether some host reaches the flag store so (SOCKET: the store listens for local hosts too)."""
        return any(connection.flag_reach is reach for connection in self.by_host.values())

    def ansible_settings(self, flags: FlagEndpoint | None) -> list[Setting]:
        return [setting for connection in self.kinds() for setting in connection.ansible_settings(flags)]

    def step_vars(self, run: RunDir, tunnel: bool) -> dict[str, str]:
        """The variables a step's play gets for the kinds its hosts use (ssh: the checked control folder)."""
        return {name: value for connection in self.kinds() for name, value in connection.step_vars(run, tunnel).items()}

    def close(self, run: RunDir) -> int:
        """Close what the step left open (ssh masters); how many were asked to stop."""
        return sum(connection.close(run) for connection in self.kinds())
