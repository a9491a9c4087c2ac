"""The ``local`` connection: the host is the controller itself (the embedded default inventory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..engine.flag_server import FlagReach
from .base import Connection


@dataclass(frozen=True)
class Local(Connection):
    """Ansible runs the host's commands as processes of this machine; tasks reach the flag store's
    Unix socket itself (netunicorn's HTTP tasks a loopback port of the controller); files come home
    by a copy (the plugin's fetch_file). No masters: nothing to open or close."""

    kind: ClassVar[str] = "local"
    names: ClassVar[frozenset[str]] = frozenset({"local", "ansible.builtin.local"})
    flag_reach: ClassVar[FlagReach] = FlagReach.SOCKET
