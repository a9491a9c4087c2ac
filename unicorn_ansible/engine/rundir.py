"""The run folder: the one owner of its paths and of its record, ``run.json``.

A run folder is ansible-runner's private data dir plus what unicorn-ansible keeps::

    run.json                 the run's record: name, nodes, inventory, options, versions, status
    .run.lock                taken (flock) by every change of the record
    .run.busy                taken (flock) for the whole of a collect, cancel or delete (they are exclusive
                             per run: :meth:`RunDir.exclusive`); it names the pid holding it and what it does
    experiment.pkl           the Experiment, for the client (written by this controller)
    flags.json               the run's flag values; flags-endpoint.json: where its flag store listens
    inventory/hosts.yml      the embedded default inventory (user inventories are referenced, never copied)
    inventory-snapshot.json  the experiment's hosts and their variables, secrets removed
    env/envvars              Ansible settings for ansible-runner
    project/                 the generated playbooks, roles/, callback_plugins/, files/nodes/<node>/
    nodes/<executor>/        what comes back from each deployment (the node's name, NODE#N for its N-th
                             pipeline): status.json (the callback), outbox.tar (fetched) and what it
                             unpacks to (state.json, journal, deploy-report.json, logs/)
    artifacts/               ansible-runner's own records

The controller writes files here only through :func:`write_atomic` or :func:`atomic_file`
(readers never see half a file) and changes the record only through :meth:`RunDir.update`, a
read-modify-write under the folder's lock, so concurrent writers (a client's background play,
a cancel from the CLI) never lose each other's changes. These helpers, with :func:`write_json`
and :func:`read_json` (the wire's bounded parser), are the controller's only atomic-write and
JSON-read helpers, for every file it keeps. The records themselves (run.json, status.json, what
nodes send) are ``node/wire.py``'s. This module imports only the standard library, ``errors``
and ``node/protocol`` and ``node/wire``: the callback plugin, loaded by ansible-playbook,
imports it too.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import RunError
from ..node import wire
from ..node.protocol import DEPLOY_REPORT, LOGS, PIPELINE
from ..node.wire import DeployReport, NodeStatusRecord, RunRecord, WireError

RECORD = "run.json"
LOCK = ".run.lock"
BUSY = ".run.busy"
EXPERIMENT = "experiment.pkl"
FLAGS = "flags.json"
FLAGS_ENDPOINT = "flags-endpoint.json"
INVENTORY_SNAPSHOT = "inventory-snapshot.json"
NODE_STATUS = "status.json"
#: the tasks a node's executor reported finished, one JSON line each (appended as they come)
NODE_FINISHED = "finished.jsonl"
#: what a run's own controller (engine/detached.py) printed: its errors, if it had any
CONTROLLER_LOG = "controller.log"
#: a JSON object as stored: run.json's fields as the engine reads and changes them (typed: RunRecord)
Stored = dict[str, Any]

#: (run folder, thread) holding :meth:`RunDir.exclusive` in this process: a step inside another (delete
#: --force cancels first) goes on under the lock its caller holds
_EXCLUSIVE: set[tuple[str, int]] = set()


class RunStatus(str, enum.Enum):
    """A run's ``status`` in its record, in the order a run goes through them."""

    COMPILED = "compiled"
    PREPARING = "preparing"
    READY = "ready"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A file for ``path`` to write through the handle given: put in place whole when the block
    ends, not at all if it raises (a temporary file beside it, renamed over it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as handle:
            os.chmod(tmp, mode)
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Write ``path`` whole or not at all (see :func:`atomic_file`)."""
    with atomic_file(path, mode) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_json(path: Path, data: object, mode: int = 0o600, sort_keys: bool = False) -> None:
    """``data`` as indented JSON (what JSON cannot say, as text), written atomically."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n", mode)


def read_json(path: Path) -> Stored | None:
    """A JSON object from ``path``; None when the file is missing, unreadable, not JSON, beyond the
    wire's bounds (size, depth) or not an object (see :func:`unicorn_ansible.node.wire.read_json`)."""
    return wire.read_json(path)


def executors(record: Mapping[str, object] | RunRecord) -> dict[str, str]:
    """Every deployment of a run by its executor id (the node's name; ``NODE#N`` for a node's N-th
    pipeline), in the experiment's order, with its inventory host (see RunRecord.deployments).
    Each id names a folder of the run (``nodes/<id>``): a record as stored (a mapping) whose
    ``executors`` or ``hosts`` hold an entry that cannot (``../../outside``, an absolute path, NUL)
    is a RunError naming the entry, never read as some other list."""
    if not isinstance(record, RunRecord):
        check_entries(record)
        record = RunRecord.from_untrusted(dict(record), RECORD, lenient=True)
    return record.deployments()


def check_entries(record: Mapping[str, object]) -> None:
    """RunError when run.json's ``executors`` or ``hosts`` name what cannot be a folder inside
    the run folder (a hand-edited or crafted record): the one entry named, and how to fix it."""
    for field in ("executors", "hosts"):
        entries = record.get(field)
        for entry in entries if isinstance(entries, (dict, list)) else ():
            if isinstance(entry, str):
                folder_part(entry, f"{RECORD}'s {field} entry")


def folder_part(name: str, what: str = "a node's name") -> str:
    """``name`` if it can name one folder inside the run folder (``nodes/<name>``); a RunError
    naming it otherwise (``..``, a ``/``, NUL, empty, over 255 characters): no name read from the
    run folder or sent by a host makes a path outside it."""
    try:
        return wire.check_folder_name(name)
    except ValueError as exc:
        raise RunError(f"{what} {exc} inside the run folder (changed by hand or crafted); "
                       "correct or remove it") from None


@dataclass(frozen=True)
class RunDir:
    """One run folder: every path in it, and its record read and changed under its lock."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    # -- the controller's files ---------------------------------------------------
    @property
    def record_file(self) -> Path:
        return self.path / RECORD

    @property
    def experiment_file(self) -> Path:
        return self.path / EXPERIMENT

    @property
    def controller_log(self) -> Path:
        return self.path / CONTROLLER_LOG

    @property
    def flags_file(self) -> Path:
        return self.path / FLAGS

    @property
    def flags_endpoint_file(self) -> Path:
        return self.path / FLAGS_ENDPOINT

    @property
    def inventory_dir(self) -> Path:
        return self.path / "inventory"

    @property
    def default_inventory_file(self) -> Path:
        return self.inventory_dir / "hosts.yml"

    @property
    def inventory_snapshot(self) -> Path:
        return self.path / INVENTORY_SNAPSHOT

    @property
    def envvars_file(self) -> Path:
        return self.path / "env" / "envvars"

    @property
    def project(self) -> Path:
        return self.path / "project"

    @property
    def nodes_dir(self) -> Path:
        return self.path / "nodes"

    def shipped_dir(self, node: str) -> Path:
        """What the compiler prepared for ``node``: its bundle and readable copies of its files."""
        return self.project / "files" / "nodes" / folder_part(node)

    def shipped_pipelines(self) -> list[Path]:
        return sorted((self.project / "files" / "nodes").glob(f"*/{PIPELINE}"))

    # -- what comes back from a node --------------------------------------------
    def node_dir(self, node: str) -> Path:
        """``nodes/<node>``; a RunError for a name that would make a path outside the run folder."""
        return self.nodes_dir / folder_part(node)

    def node_status_file(self, node: str) -> Path:
        """Written by the callback plugin while the plays run: the node's phase and progress."""
        return self.node_dir(node) / NODE_STATUS

    def node_status(self, node: str) -> NodeStatusRecord:
        """The node's status as the collector keeps it (read leniently: a run folder's record); one
        that cannot be read at all is an empty status whose error says why."""
        path = self.node_status_file(node)
        try:
            return NodeStatusRecord.read(path, f"nodes/{node}/{NODE_STATUS}", lenient=True) or NodeStatusRecord()
        except WireError as exc:
            return NodeStatusRecord(error=str(exc))

    def node_finished_file(self, node: str) -> Path:
        """Appended by the callback plugin: each task the executor reported finished, once."""
        return self.node_dir(node) / NODE_FINISHED

    def node_finished(self, node: str) -> tuple[wire.ReportedTask, ...]:
        """The tasks the node's executor reported finished (before its results came home), read
        as untrusted: a line that is not one is left out, at most the wire's count of items. A run
        of an earlier release kept them in status.json."""
        found = list(self.node_status(node).finished)
        try:
            handle = self.node_finished_file(node).open("rb")
        except OSError:
            return tuple(found)
        with handle:
            for number, line in enumerate(handle):
                if len(found) >= wire.MAX_ITEMS:
                    break
                source = f"nodes/{node}/{NODE_FINISHED}: line {number + 1}"
                with contextlib.suppress(WireError):
                    found.append(wire.ReportedTask.from_untrusted(wire.parse_object(line, source), source))
        return tuple(found)

    def node_logs_dir(self, node: str) -> Path:
        return self.node_dir(node) / LOGS

    def deploy_report_file(self, node: str) -> Path:
        return self.node_dir(node) / DEPLOY_REPORT

    def deploy_report(self, node: str) -> DeployReport | None:
        """The deployment's report the node sent; None if it sent none, or one that is refused
        (reading the node's results says why: results/load.py)."""
        try:
            return DeployReport.read(self.deploy_report_file(node), f"nodes/{node}/{DEPLOY_REPORT}")
        except WireError:
            return None

    # -- the record ----------------------------------------------------------------
    def exists(self) -> bool:
        return self.record_file.is_file()

    def record(self) -> Stored:
        """The record as stored (a JSON object, bounded); :meth:`run_record` is the typed one."""
        record = read_json(self.record_file)
        if record is None:
            raise RunError(f"{self.path} is not a unicorn-ansible run folder (no readable {RECORD})")
        return record

    def run_record(self) -> RunRecord:
        """The record, typed (read leniently: a field of the wrong type reads as absent)."""
        return RunRecord.from_untrusted(self.record(), str(self.record_file), lenient=True)

    def create_record(self, record: RunRecord | Mapping[str, object]) -> None:
        """Write the record a run starts with (a mapping is checked as a RunRecord and kept as given)."""
        fields = record.to_json() if isinstance(record, RunRecord) else dict(record)
        RunRecord.from_untrusted(fields, RECORD)
        with self.locked():
            write_json(self.record_file, fields)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run folder's lock (between processes and between threads)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self, doing: str) -> Iterator[None]:
        """Hold the run's busy lock for a whole step (``doing``: "collected", "cancelled", "deleted",
        "replaced"): collect, cancel and delete of one run never overlap (two fetches would share its
        files; a delete would pull the folder from under a collect). Held elsewhere: a RunError
        naming the pid and what it does. Re-entered by the same thread, it goes on under the lock
        already held. The run folder must exist; one deleted meanwhile is a RunError too."""
        held = (os.path.abspath(self.path), threading.get_ident())
        if held in _EXCLUSIVE:
            yield
            return
        path = self.path / BUSY
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise RunError(f"run {self.name} does not exist (was it deleted meanwhile?); "
                           "see `unicorn-ansible list`") from None
        except OSError as exc:
            raise RunError(f"cannot open {path}: {exc.strerror}; check the run folder's owner and mode") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunError(self._busy_message(fd)) from None
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # deleted (or replaced) while this waited for the lock
                raise RunError(f"run {self.name} was deleted meanwhile; see `unicorn-ansible list`")
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "doing": doing}).encode(), 0)
            _EXCLUSIVE.add(held)
            try:
                yield
            finally:
                _EXCLUSIVE.discard(held)
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def _busy_message(self, fd: int) -> str:
        """Who holds the busy lock (what it wrote into the lock file), as a one-line error."""
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        except (OSError, ValueError):
            holder = None
        if not isinstance(holder, dict):
            holder = {}
        pid = holder.get("pid") if isinstance(holder.get("pid"), int) else "?"
        doing = holder.get("doing") if holder.get("doing") in ("collected", "cancelled", "deleted",
                                                                 "replaced") else "worked on"
        return f"run {self.name} is being {doing} by pid {pid}; wait for it to end, then try again"

    def update(self, change: Callable[[Stored], Mapping[str, object]] | None = None, **fields: object) -> Stored:
        """Change the record atomically: ``fields`` are set, then ``change(record)`` returns
        more fields computed from the record as it is under the lock. Returns the new record."""
        with self.locked():
            record = self.record()
            record.update(fields)
            if change is not None:
                changed = change(record)
                fields = dict(fields, **changed)
                record.update(changed)
            RunRecord.from_untrusted(fields, f"a change of {RECORD}")  # what this writer writes is a record's
            write_json(self.record_file, record)
        return record
