"""Packing the outbox: one file with everything the controller fetches from a work folder."""

from __future__ import annotations

import json
import os
import tarfile
import time

from .artifacts import write_manifest
from .files import atomic_file, copy_range
from .protocol import JOURNAL, LOGS, OUTBOX, OUTBOX_FILES, OUTBOX_MANIFEST
from .wire import OutboxManifest

#: a journal larger than this is fetched as it is, next to the outbox (see roles/unicorn's unicorn_fetch)
OUTBOX_SEPARATE_OVER = 8 * 1024 * 1024


def _members(workdir: str) -> list[str]:
    """The work folder's files the outbox carries: state, journal, deploy report, logs."""
    members = [name for name in OUTBOX_FILES if os.path.isfile(os.path.join(workdir, name))]
    for root, _, files in os.walk(os.path.join(workdir, LOGS)):
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                members.append(os.path.relpath(path, workdir))
    return members


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(time.time()), 0o644
    return info.tobuf(tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def pack_outbox(workdir: str) -> str:
    """Pack the outbox (with the artifacts' manifest, written afresh); return its path. A plain tar whose first member, the manifest, says
    which files are fetched on their own; file contents are copied inside the kernel."""
    target = os.path.join(workdir, OUTBOX)
    write_manifest(workdir)
    members = _members(workdir)
    separate: dict[str, int] = {}
    journal = os.path.join(workdir, JOURNAL)
    if JOURNAL in members and os.path.getsize(journal) > OUTBOX_SEPARATE_OVER:
        # a large journal is fetched as it is: no copy here or on the controller
        members.remove(JOURNAL)
        separate[JOURNAL] = os.path.getsize(journal)
    with atomic_file(target, raw=True) as out:
        data = json.dumps(OutboxManifest(separate=separate).to_json()).encode()
        out.write(_tar_header(OUTBOX_MANIFEST, len(data)) + data + _padding(len(data)))
        for name in members:
            with open(os.path.join(workdir, name), "rb") as source:
                size = os.fstat(source.fileno()).st_size  # a file still growing: what it had now
                out.write(_tar_header(name, size))
                copy_range(source.fileno(), out.fileno(), size)
                out.write(_padding(size))
        out.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    return target
