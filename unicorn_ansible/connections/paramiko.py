"""The ``paramiko_ssh`` connection: SSH through the paramiko library inside ansible-playbook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Connection


@dataclass(frozen=True)
class Paramiko(Connection):
    """Ansible's paramiko plugin keeps its connections in ansible-playbook's own process (no master
    to close) and takes no ssh arguments: it opens no port forwarding, so tasks on the host cannot
    reach the flag store. Files come home by sftp."""

    kind: ClassVar[str] = "paramiko"
    names: ClassVar[frozenset[str]] = frozenset({"paramiko", "paramiko_ssh", "ansible.builtin.paramiko_ssh"})
