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
from typing import Any, Dict, Optional, Sequence, Union

from ..ui.client import Client

_IGNORED = ("endpoint={endpoint!r}, login and password name a netunicorn server; unicorn-ansible has "
            "none and runs on the inventory (this machine unless RemoteClient(inventory=...) names one)")


class RemoteClient(Client):
    """Our Client, built as netunicorn's RemoteClient is. ``endpoint``, ``login``, ``password``
    and ``authentication_context`` are accepted and not used (a notice says so once)."""

    def __init__(self, endpoint: Optional[str] = None, login: Optional[str] = None,
                 password: Optional[str] = None,
                 authentication_context: Optional[Dict[str, Dict[str, str]]] = None, *,
                 inventory: Union[None, str, Sequence[str]] = None, forks: Optional[int] = None,
                 **options: Any) -> None:
        if endpoint is not None or login is not None or password is not None:
            warnings.warn(_IGNORED.format(endpoint=endpoint), stacklevel=2)
        self.endpoint, self.login = endpoint, login
        self.authentication_context = authentication_context or {}
        super().__init__(inventory, forks, **options)


__all__ = ["RemoteClient"]
