"""``RemoteClient``: netunicorn's client class name and constructor, over our Client.

A netunicorn notebook changes one line::

    from netunicorn.client.remote import RemoteClient, RemoteClientException
    # becomes
    from unicorn_ansible import RemoteClient, RemoteClientException

and its ``RemoteClient(endpoint=..., login=..., password=...)`` runs on the local machine, or
on an inventory: ``RemoteClient(inventory="lab.ini")``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..engine.lifecycle import EngineOptions
from ..model.nodes import CountableNodePool
from ..ui.client import Client
from .netunicorn import for_netunicorn

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

_IGNORED = ("endpoint={endpoint!r}, login and password name a netunicorn server; unicorn-ansible has "
            "none and runs on the inventory (this machine unless RemoteClient(inventory=...) names one)")


class RemoteClient(Client):
    """Our Client, built as netunicorn's RemoteClient is. ``endpoint``, ``login``, ``password``
    and ``authentication_context`` are accepted and not used (a notice says so once); ``inventory``,
    ``forks`` and the other options are the Client's. Its nodes are netunicorn Nodes too whenever
    netunicorn is installed (its users' Experiment.map takes them)."""

    def __init__(self, endpoint: str | None = None, login: str | None = None,
                 password: str | None = None,
                 authentication_context: dict[str, dict[str, str]] | None = None, *,
                 inventory: None | str | Sequence[str] = None, forks: int | None = None,
                 trust_results: bool = False, **options: Unpack[EngineOptions]) -> None:
        if endpoint is not None or login is not None or password is not None:
            warnings.warn(_IGNORED.format(endpoint=endpoint), stacklevel=2)
        self.endpoint, self.login = endpoint, login
        self.authentication_context = authentication_context or {}
        super().__init__(inventory, forks, trust_results, **options)

    def get_nodes(self) -> CountableNodePool:
        """The inventory's hosts as a node pool of netunicorn Nodes (netunicorn loaded if it is installed)."""
        return for_netunicorn(self.inventory.nodes(), load=True)


__all__ = ["RemoteClient"]
