"""Artifacts at home: what a host offers, where each file goes, the run's size cap, the index.

A host lists its artifacts in ``artifacts.json`` inside its outbox (see node/artifacts.py).
That list is untrusted: every entry is checked here before anything is written. A file goes
to ``nodes/<node>/artifacts/<task folder>/<path>``; a path that is absolute, has ``..`` or
``.`` parts, or would pass through a symbolic link is refused, so nothing outside the node's
folder is ever touched. The run's cap (``CompileOptions.artifact_cap``) is shared by all
nodes, whose fetches run in parallel processes: each file's bytes are reserved under a lock
before it is fetched. What a node brought home (or left on its host, and why) is kept in
``nodes/<node>/artifacts-index.json``; a file already there with the same size and sha256 is
not fetched again.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..engine.rundir import RunDir, read_json, write_json
from ..errors import RunError
from ..node.digests import file_sha256
from ..node.protocol import ARTIFACTS, ARTIFACTS_MANIFEST, OUTBOX, artifact_folder
from ..node.wire import (
    ArtifactIndexEntry,
    ArtifactOffer,
    ArtifactsIndex,
    ArtifactsManifest,
    JSONObject,
    WireError,
    parse_object,
    safe_parts,
)

__all__ = ["DEFAULT_ARTIFACT_CAP", "Artifact", "ArtifactFetch", "Budget", "Job", "human_size", "load_artifacts",
           "parse_size", "prepare_target", "read_offer", "safe_parts"]

DEFAULT_ARTIFACT_CAP = 10 * 1024**3
INDEX = "artifacts-index.json"
#: the run-wide reservations of the cap, in nodes/
BUDGET = ".artifact-bytes.json"
MANIFEST_LIMIT = 64 * 1024 * 1024


@dataclass
class Artifact:
    """One file a task left: where it is at home (``file``, relative to the run folder), or why it
    is still on the host (``left``), and where it was there (``source``)."""

    node: str
    task: str | None
    path: str
    size: int | None = None
    sha256: str | None = None
    file: str | None = None
    source: str | None = None
    left: str | None = None

    def to_dict(self) -> JSONObject:
        return asdict(self)


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GB``, ``1000`` -> bytes."""
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (cleaned[:-1], cleaned[-1]) if cleaned[-1:] in units and cleaned[-1:].isalpha() else (cleaned, "")
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ValueError(f"{text!r} is not a size; write e.g. 500M, 2G or 1000000") from None
    if value < 0:
        raise ValueError(f"{text!r}: a size cannot be negative")
    return int(value)


def read_offer(outbox: Path) -> tuple[list[ArtifactOffer], list[str]]:
    """The artifacts a host's outbox offers, each checked (a refused one is left on the host and
    says why: node/wire.py's ArtifactOffer), and a message when the list itself cannot be read."""
    source = f"nodes/{outbox.parent.name}/{ARTIFACTS_MANIFEST}"
    try:
        with tarfile.open(outbox, "r:") as archive:
            member = next((m for m in archive if m.name == ARTIFACTS_MANIFEST), None)
            if member is None:
                return [], []
            if not member.isfile() or member.size > MANIFEST_LIMIT:
                return [], [f"{ARTIFACTS_MANIFEST} is not a file of at most {MANIFEST_LIMIT} bytes"]
            handle = archive.extractfile(member)
            data = handle.read() if handle is not None else b""
        manifest = ArtifactsManifest.from_untrusted(parse_object(data, source, MANIFEST_LIMIT), source)
    except (OSError, tarfile.TarError, WireError) as exc:
        return [], [f"the list of artifacts cannot be read: {exc}"]
    return list(manifest.artifacts), []


def prepare_target(node_dir: Path, task: str | None, path: str) -> Path:
    """Where an artifact goes, its folders made; ValueError when any part of the way is a link."""
    parts = [ARTIFACTS, artifact_folder(task), *safe_parts(path)]
    here = node_dir
    for part in parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise ValueError(f"{here} is a symbolic link")
        here.mkdir(exist_ok=True)
    target = here / parts[-1]
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise ValueError(f"{target} exists and is not a regular file")
    return target


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Budget:
    """The run's cap, shared by every node's fetch: bytes are reserved before a file is fetched."""

    nodes_dir: Path
    cap: int

    def reserve(self, key: str, size: int) -> bool:
        path = self.nodes_dir / BUDGET
        with _locked(self.nodes_dir / f"{BUDGET}.lock"):
            reserved = read_json(path) or {}
            used = sum(v for k, v in reserved.items() if k != key and isinstance(v, int))
            if used + size > self.cap:
                return False
            reserved[key] = size
            write_json(path, reserved)
            return True

    def release(self, key: str) -> None:
        path = self.nodes_dir / BUDGET
        with _locked(self.nodes_dir / f"{BUDGET}.lock"):
            reserved = read_json(path) or {}
            reserved.pop(key, None)
            write_json(path, reserved)


#: where files arrive before they are put in place (a name of our own: host names never reach a transfer)
INCOMING = ".artifacts-incoming"


@dataclass
class Job:
    """One file to fetch: from ``transfer`` in the host's work folder to ``part``, then ``target``."""

    offer: ArtifactOffer
    target: Path
    part: Path


@dataclass
class ArtifactFetch:
    """One node's artifacts brought home: which to fetch, and the index of what arrived."""

    node_dir: Path
    cap: int = DEFAULT_ARTIFACT_CAP
    index: dict[str, ArtifactIndexEntry] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    #: the index entries this fetch wrote (save merges only these into the index on disk)
    changed: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.index = dict(_read_index(self.node_dir).entries)
        self.budget = Budget(self.node_dir.parent, self.cap)

    @classmethod
    def for_outbox(cls, outbox: Path) -> ArtifactFetch:
        """The fetch for the node whose outbox this is; the cap from the run's record."""
        node_dir = outbox.parent
        try:
            options = RunDir(node_dir.parent.parent).run_record().options
        except RunError:
            options = None
        cap = options.artifact_cap if options is not None else None
        return cls(node_dir, cap if cap is not None else DEFAULT_ARTIFACT_CAP)

    def _key(self, offer: ArtifactOffer) -> str:
        return json.dumps([offer.task, offer.path])

    def _leave(self, offer: ArtifactOffer, reason: str) -> None:
        self.changed.add(self._key(offer))
        self.index[self._key(offer)] = ArtifactIndexEntry(task=offer.task, path=offer.path, size=offer.size,
                                                          sha256=offer.sha256, source=offer.source, left=reason)
        self.messages.append(f"{offer.path!r} of task {offer.task!r} left on the host at {offer.source}: {reason}")

    def _unchanged(self, offer: ArtifactOffer) -> bool:
        known = self.index.get(self._key(offer))
        if known is None or known.left or known.offered_sha256 != offer.sha256 or known.size != offer.size:
            return False
        file = home_file(self.node_dir, known.file)
        return file is not None and file.is_file() and file.stat().st_size == offer.size

    def jobs(self) -> Iterator[Job]:
        """The files to fetch from the host's outbox, in order; refused ones are noted, not given."""
        offers, refused = read_offer(self.node_dir / OUTBOX)
        self.messages += refused
        for offer in offers:
            if offer.left:
                self._leave(offer, offer.left)
                continue
            if self._unchanged(offer):
                continue
            try:
                target = prepare_target(self.node_dir, offer.task, offer.path)
            except ValueError as exc:
                self._leave(offer, f"refused: {exc}")
                continue
            if not self.budget.reserve(f"{self.node_dir.name}\0{self._key(offer)}", offer.size or 0):
                self._leave(offer, f"the run's artifact cap of {human_size(self.cap)} was reached "
                                   f"(to bring it home: unicorn-ansible collect {self.node_dir.parent.parent.name} "
                                   "--artifact-cap SIZE)")
                continue
            incoming = self.node_dir / INCOMING
            incoming.mkdir(exist_ok=True)
            own = f"{hashlib.sha256(self._key(offer).encode()).hexdigest()[:32]}-{os.getpid()}-{secrets.token_hex(4)}"
            yield Job(offer, target, incoming / own)  # this fetch's own file: another fetch never shares it

    def fetched(self, job: Job) -> None:
        """The job's file arrived at ``job.part``: check it and put it in place."""
        if job.part.stat().st_size > (job.offer.size or 0):  # the cap counted what the host said
            self.failed(job, f"it is larger than the {job.offer.size} bytes the host listed")
            return
        os.replace(job.part, job.target)
        run_dir = self.node_dir.parent.parent
        self.changed.add(self._key(job.offer))
        self.index[self._key(job.offer)] = ArtifactIndexEntry(
            task=job.offer.task, path=job.offer.path, size=job.target.stat().st_size,
            sha256=file_sha256(job.target), offered_sha256=job.offer.sha256, source=job.offer.source,
            file=str(job.target.relative_to(run_dir)))

    def failed(self, job: Job, reason: str) -> None:
        if job.part.exists():
            job.part.unlink()
        self.budget.release(f"{self.node_dir.name}\0{self._key(job.offer)}")
        self._leave(job.offer, f"fetching it failed: {reason}")

    def save(self) -> None:
        """Write what this fetch changed into the index, merged with what another fetch of the
        same node (a cancel from another terminal and the run's own last call) saved meanwhile."""
        with _locked(self.node_dir / f"{INDEX}.lock"):
            current = _read_index(self.node_dir)
            merged = dict(current.entries)
            merged.update({key: self.index[key] for key in self.changed if key in self.index})
            write_json(self.node_dir / INDEX, dataclasses.replace(current, entries=merged).to_json())
            self.index = merged


def _read_index(node_dir: Path) -> ArtifactsIndex:
    """A node's index (the run folder's record: read leniently; one that cannot be read is empty)."""
    try:
        return ArtifactsIndex.read(node_dir / INDEX, f"nodes/{node_dir.name}/{INDEX}", lenient=True) \
            or ArtifactsIndex()
    except WireError:
        return ArtifactsIndex()


def home_file(node_dir: Path, file: str | None) -> Path | None:
    """The file an index entry says came home (``file``: relative to the run folder), if it is
    inside the node's artifacts folder; None for anything else (absolute, ``..``, a link out of
    it, another node's): a hand-edited or crafted index never makes a view read outside it."""
    if not file or file.startswith("/") or "\0" in file:
        return None
    root = (node_dir / ARTIFACTS).resolve()
    path = (node_dir.parent.parent / file).resolve()
    return path if path.is_relative_to(root) and path != root else None


def load_artifacts(run_dir: Path, node: str) -> list[Artifact]:
    """What a node's index says came home or stayed on its host; an entry whose file is outside
    the node's artifacts folder is shown as not home, saying so."""
    node_dir = RunDir(run_dir).node_dir(node)
    artifacts = []
    for entry in _read_index(node_dir).entries.values():
        file, left = entry.file, entry.left or None
        if file and home_file(node_dir, file) is None:
            file, left = None, f"refused: the index names {file!r}, outside the node's artifacts folder"
        artifacts.append(Artifact(node=node, task=entry.task, path=entry.path, size=entry.size, sha256=entry.sha256,
                                  file=file, source=entry.source or None, left=left))
    return sorted(artifacts, key=lambda a: (a.task or "", a.path))
