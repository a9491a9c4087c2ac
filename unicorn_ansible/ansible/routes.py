"""How files come home from a host: the names of the routes (the standard library only: the role's
actions, loaded by ansible-playbook, import it)."""

from __future__ import annotations

import enum


class FetchRoute(enum.Enum):
    """How a file came home (the ``route`` of unicorn_fetch's and unicorn_node's results)."""

    #: the connection plugin's own transfer (sftp/scp, a copy, docker/podman cp), as the login user
    CONNECTION = "connection"
    #: with become: the become user copies it into the login user's private folder, then as above
    HANDOVER = "become hand-over"
    #: where the hand-over cannot be made: ansible.builtin.fetch (base64 through slurp)
    ANSIBLE = "ansible.builtin.fetch"
    #: inside the executor's answer (small outboxes)
    INLINE = "inline"
    #: (a site worker, not built yet) fetched onto the worker, home in its ansible-runner stream
    STREAM = "worker stream"
