"""A node's outbox at home: the untrusted tar its host packed (node/outbox.py), unpacked with bounds.

Only regular files with the names an executor writes are taken, each written by us under the
node's folder; links, devices and other paths are ignored, so nothing outside the node's folder
can be touched. The outbox's first member, its manifest (outbox.json), says which files the
fetch brings on their own; a path a host names (a log) is used only inside the node's folder.
"""

from __future__ import annotations

import errno
import re
import tarfile
from pathlib import Path

from ..engine.rundir import atomic_file
from ..errors import RunError, UntrustedDataError
from ..home import private_files
from ..node.files import copy_range
from ..node.protocol import JOURNAL, OUTBOX, OUTBOX_MANIFEST
from ..node.wire import OutboxManifest, WireError, parse_object

# What an outbox fetched from a host may contain: these names, as regular files, nothing else.
_OUTBOX_MEMBER = re.compile(
    r"^(journal|state\.json|deploy-report\.json|started\.json|artifacts\.json|logs/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?)$"
)
#: the only files an outbox may ask to be fetched on their own
SEPARATE = (JOURNAL,)
#: the largest manifest an outbox may start with
MANIFEST_LIMIT = 64 * 1024
UNPACKED = ".outbox-unpacked"


#: errors of this machine's own file system: no fault of the archive's
CONTROLLER_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


class ControllerWriteError(RunError):
    """The controller could not write what it unpacks (its disk is full, read-only): named as such;
    the archive fetched is kept, to unpack again once there is room."""

    def __init__(self, path: Path, folder: Path, exc: OSError) -> None:
        super().__init__(f"the controller could not write {path}: {exc.strerror}; what was fetched is kept "
                         f"({folder / OUTBOX}); free space on the controller (df -h), then look again")


def unpack_outbox(folder: Path) -> None:
    """Unpack ``outbox.tar`` (fetched from the host) next to it, once per fetch (see the module)."""
    outbox = folder / OUTBOX
    marker = folder / UNPACKED
    if not outbox.is_file():
        return
    if marker.exists() and marker.stat().st_mtime_ns >= outbox.stat().st_mtime_ns:
        return
    try:
        with private_files(), open(outbox, "rb") as source, tarfile.open(fileobj=source, mode="r:") as archive:
            for member in archive:  # (outbox.json, the manifest, is for the fetch: not taken)
                if not member.isfile() or not _OUTBOX_MEMBER.match(member.name) or ".." in member.name.split("/"):
                    continue
                target = folder / member.name
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_file(target) as handle:
                        copy_range(source.fileno(), handle.fileno(), member.size, member.offset_data)
                except OSError as exc:
                    if exc.errno in CONTROLLER_ERRNOS:
                        raise ControllerWriteError(target, folder, exc) from exc
                    raise
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UntrustedDataError(f"the results fetched from node {folder.name} are not a readable archive: {exc}") from exc
    with private_files():
        marker.touch()


def separate_files(outbox: str | Path) -> list[str]:
    """Names the outbox's manifest asks to fetch on their own (the archive is untrusted: a manifest
    that is not one asks for nothing)."""
    try:
        with tarfile.open(outbox, "r:") as archive:
            member = archive.next()
            if member is None or member.name != OUTBOX_MANIFEST or not member.isfile() or member.size > MANIFEST_LIMIT:
                return []
            handle = archive.extractfile(member)
            if handle is None:
                return []
            source = f"{outbox}: {OUTBOX_MANIFEST}"
            manifest = OutboxManifest.from_untrusted(parse_object(handle.read(), source, MANIFEST_LIMIT), source)
    except (tarfile.TarError, OSError, WireError):
        return []
    return [name for name in SEPARATE if name in manifest.separate]


def node_file(folder: Path, relative: object) -> Path | None:
    """A path a host named (a log), inside the node's folder; None for anything else
    (absolute, ``..``, a link out of it, not a text)."""
    if not isinstance(relative, str) or not relative or relative.startswith("/") or "\0" in relative:
        return None
    root = folder.resolve()
    path = (folder / relative).resolve()
    return path if path.is_relative_to(root) and path != root else None
