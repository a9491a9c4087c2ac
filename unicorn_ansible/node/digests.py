"""Hashes both sides compute: content keys (an environment's, an image's) and a file's sha256.

The compiler names a node's environment folder with :func:`content_key`, the deployment marks a
built environment with it and names the images it builds with it, and the controller checks an
artifact that came home with :func:`file_sha256`, as the node listed it: one home each.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping


def content_key(parts: Mapping[str, object], length: int | None = 16) -> str:
    """The sha256 (hexadecimal, its first ``length`` characters; None: all) of ``parts`` as sorted JSON:
    the same parts give the same key on every machine and in every run."""
    digest = hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()
    return digest if length is None else digest[:length]


def environment_key(commands: list[str], variables: Mapping[str, str], python: str) -> str:
    """The name of a node's environment folder: runs with the same requirements, variables and
    Python share it."""
    return content_key({"commands": commands, "variables": dict(variables), "python": python})


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's content (hexadecimal), read in pieces: never the whole file in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
