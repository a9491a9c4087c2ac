"""Artifacts: the files tasks leave for the user, offered to the controller.

A task writes files into its artifacts folder (``artifacts/<task>/`` in the work folder,
``$UNICORN_ARTIFACTS`` and ``task.artifacts_dir`` while it runs), or is declared with paths
or glob patterns (on the task, the pipeline or the experiment: ``node.json``'s
``artifacts``). When the outbox is packed, :func:`write_manifest` lists them all in
``artifacts.json``: each file's task, its path inside the task's folder, its size and sha256,
and the name the controller fetches it by (a link in ``outgoing/``, so any file name travels),
or why it is left on the host. Files are never read into memory: hashed in pieces, and a hash
is kept while a file's size and time are unchanged.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil

from .digests import file_sha256
from .files import read_json, write_json_atomic
from .protocol import ARTIFACTS, ARTIFACTS_MANIFEST, ARTIFACTS_OUTGOING, NODE_SPEC, artifact_folder
from .wire import ArtifactOffer, ArtifactsManifest, DeclaredArtifact, NodeSpec

#: which task each artifacts folder belongs to (the folder names are the task names, cleaned)
FOLDER_TASKS = "artifact-tasks.json"
#: sha256 of files already hashed, by path, size and modification time
HASH_CACHE = "artifact-hashes.json"
#: at most this many files are offered; the rest are listed as left on the host
MAX_FILES = 100_000


class TaskFolders:
    """The executor's side: each task name's artifacts folder, made when its first task starts."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        known = read_json(os.path.join(workdir, FOLDER_TASKS)) or {}
        self.tasks: dict[str, str] = {k: v for k, v in known.items() if isinstance(v, str)}

    def folder_for(self, task: str) -> str:
        folder = artifact_folder(task)
        path = os.path.join(self.workdir, ARTIFACTS, folder)
        if folder not in self.tasks:
            os.makedirs(path, exist_ok=True)
            self.tasks[folder] = task
            write_json_atomic(os.path.join(self.workdir, FOLDER_TASKS), self.tasks)
        return path


class _Hashes:
    """sha256 by path, computed again only when a file's size or modification time changed."""

    def __init__(self, workdir: str) -> None:
        self.path = os.path.join(workdir, HASH_CACHE)
        known = read_json(self.path) or {}
        self.known: dict[str, tuple[int, int, str]] = {
            path: (entry[0], entry[1], entry[2]) for path, entry in known.items()
            if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], int)
            and isinstance(entry[1], int) and isinstance(entry[2], str)}

    def of(self, path: str, stat: os.stat_result) -> str:
        known = self.known.get(path)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            return known[2]
        digest = file_sha256(path)
        self.known[path] = (stat.st_size, stat.st_mtime_ns, digest)
        return digest

    def save(self) -> None:
        write_json_atomic(self.path, {path: list(entry) for path, entry in self.known.items()})


def _glob_root(pattern: str) -> str:
    """The folder a pattern's matches are named relative to: its part before the first wildcard
    (a literal path: its folder)."""
    parts = pattern.split(os.sep)
    literal = []
    for part in parts:
        if glob.has_magic(part):
            break
        literal.append(part)
    if len(literal) == len(parts):
        literal = literal[:-1]
    return os.sep.join(literal) or (os.sep if pattern.startswith(os.sep) else ".")


def _files_under(path: str, root: str) -> list[tuple[str, str]]:
    """(file, its name relative to ``root``) for a file, or every file in a folder (links not followed)."""
    if os.path.islink(path) or not os.path.isdir(path):
        return [(path, os.path.relpath(path, root))]
    found = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files) + sorted(d for d in dirs if os.path.islink(os.path.join(folder, d))):
            file = os.path.join(folder, name)
            found.append((file, os.path.relpath(file, root)))
    return found


def _candidates(workdir: str, declared: tuple[DeclaredArtifact, ...]) -> list[tuple[str | None, str, str]]:
    """(task, path in the task's folder, file on this host) for every artifact, folders first."""
    base = os.path.join(workdir, ARTIFACTS)
    found: list[tuple[str | None, str, str]] = []
    for folder, task in sorted(TaskFolders(workdir).tasks.items()):
        path = os.path.join(base, folder)
        if os.path.isdir(path) and not os.path.islink(path):
            found += [(task, name, file) for file, name in _files_under(path, path)]
    for declaration in declared:
        pattern = os.path.expanduser(declaration.pattern)
        if not pattern:
            continue
        pattern = pattern if os.path.isabs(pattern) else os.path.join(workdir, pattern)
        root = _glob_root(pattern)
        for match in sorted(glob.glob(pattern, recursive=True)):
            found += [(declaration.task, name, file) for file, name in _files_under(match, root)]
    return found


def _offer(task: str | None, name: str, file: str, hashes: _Hashes) -> ArtifactOffer:
    """One manifest entry: the file with its size and hash, or why it stays on the host."""
    source = os.path.abspath(file)
    if os.path.islink(file):
        return ArtifactOffer(task=task, path=name, source=source,
                             left="a symbolic link: only regular files are brought home")
    try:
        stat = os.stat(file)
        if not os.path.isfile(file):
            return ArtifactOffer(task=task, path=name, source=source, left="not a regular file")
        return ArtifactOffer(task=task, path=name, source=source, size=stat.st_size, sha256=hashes.of(file, stat))
    except OSError as exc:
        return ArtifactOffer(task=task, path=name, source=source, left=f"cannot be read: {exc.strerror or exc}")


def _free_name(task: str | None, name: str, seen: dict[tuple[str | None, str], str]) -> str:
    """``name``, or, when another file of the task has it (``/tmp/a/out.log`` and ``/tmp/b/out.log``
    declared, both ``out.log``), ``out~2.log``: every file comes home, none silently dropped."""
    stem, extension = os.path.splitext(name)
    number = 1
    while (task, name) in seen:
        number += 1
        name = f"{stem}~{number}{extension}"
    return name


def _declared(workdir: str) -> tuple[DeclaredArtifact, ...]:
    spec = NodeSpec.read(os.path.join(workdir, NODE_SPEC))
    return spec.artifacts.declared if spec is not None and spec.artifacts is not None else ()


def write_manifest(workdir: str) -> ArtifactsManifest:
    """List every artifact in ``artifacts.json`` and link each one in ``outgoing/``; return the manifest."""
    outgoing = os.path.join(workdir, ARTIFACTS_OUTGOING)
    shutil.rmtree(outgoing, ignore_errors=True)
    os.makedirs(outgoing)
    hashes = _Hashes(workdir)
    entries: list[ArtifactOffer] = []
    seen: dict[tuple[str | None, str], str] = {}  # (task, name) -> the file it names
    for task, name, file in _candidates(workdir, _declared(workdir)):
        if seen.get((task, name)) == os.path.abspath(file):
            continue  # matched by two patterns
        name = _free_name(task, name, seen)
        seen[(task, name)] = os.path.abspath(file)
        entry = _offer(task, name, file, hashes)
        if entry.left is None and len(entries) >= MAX_FILES:
            entry = dataclasses.replace(entry, left=f"more than {MAX_FILES} artifacts on this node")
        if entry.left is None:
            entry = dataclasses.replace(entry, transfer=f"{ARTIFACTS_OUTGOING}/{len(entries)}")
            os.symlink(os.path.abspath(file), os.path.join(workdir, entry.transfer or ""))
        entries.append(entry)
    hashes.save()
    manifest = ArtifactsManifest(artifacts=tuple(entries))
    write_json_atomic(os.path.join(workdir, ARTIFACTS_MANIFEST), manifest.to_json())
    return manifest
