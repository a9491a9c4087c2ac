"""Containers Ansible reaches with ``docker exec`` or ``podman exec`` (community.docker, containers.podman)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Connection

_STORE_FIX = ("run the pipeline in a DockerImage environment on a host reached by ssh or locally (the "
              "deployment gives its container the store), give the container an sshd and "
              "ansible_connection=ssh, or leave flags out of its pipeline")


@dataclass(frozen=True)
class Docker(Connection):
    """Commands run through ``docker exec``, files come home by ``docker cp``/``exec``: no masters,
    and the container's own network and file system hold neither the store's socket nor a tunnel
    to it (the plugin forwards nothing)."""

    kind: ClassVar[str] = "docker"
    names: ClassVar[frozenset[str]] = frozenset({"docker", "community.docker.docker", "community.docker.docker_api"})
    store_fix: ClassVar[str] = _STORE_FIX


@dataclass(frozen=True)
class Podman(Connection):
    """As Docker, through ``podman exec`` and ``podman cp``."""

    kind: ClassVar[str] = "podman"
    names: ClassVar[frozenset[str]] = frozenset({"podman", "containers.podman.podman"})
    store_fix: ClassVar[str] = _STORE_FIX
