"""The journal: append-only records of finished tasks (format in protocol's docstring)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TypeVar

from .files import write_json_atomic
from .outcome import loads_result
from .protocol import JOURNAL, REPORTED, SUCCESS
from .wire import ReportedMark, ReportedTask, TaskRecord, WireError, parse_object

#: at most this many task headers go back with one progress report
REPORT_LIMIT = 500

#: what the readers of a journal's Results give back for each payload
V = TypeVar("V")


@dataclass(frozen=True)
class JournalEntry:
    """One finished task as the journal keeps it: its header, and its pickled Result (``payload``)."""

    header: TaskRecord
    payload: bytes

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def successful(self) -> bool:
        return self.header.type == SUCCESS


def append_record(journal: IO[bytes], header: TaskRecord, payload_source: IO[bytes], size: int) -> int:
    """Append one record, copying ``size`` payload bytes from ``payload_source``; return the payload offset."""
    if header.payload_len != size:
        header = dataclasses.replace(header, payload_len=size)
    journal.write(json.dumps(header.to_json(), separators=(",", ":")).encode() + b"\n")
    offset = journal.tell()
    shutil.copyfileobj(payload_source, journal, 1024 * 1024)
    journal.write(b"\n")
    journal.flush()
    return offset


#: a header line longer than this is not one the executor wrote
HEADER_LIMIT = 64 * 1024


def _read_header(handle: IO[bytes], source: str) -> TaskRecord | None:
    """The next header; None at the end or at a record torn by a crash; WireError for a complete
    header that is not what an executor writes (a host to distrust)."""
    line = handle.readline(HEADER_LIMIT + 1)
    if not line.endswith(b"\n"):
        if len(line) > HEADER_LIMIT:
            raise WireError(f"{source}: a record header is longer than {HEADER_LIMIT} bytes")
        return None
    return TaskRecord.from_untrusted(parse_object(line, f"{source}: a record header", HEADER_LIMIT), source)


def _skip_payload(handle: IO[bytes], size: int) -> bool:
    """Seek past a payload of ``size`` bytes; False if the file is too short to hold it."""
    here = handle.tell()
    handle.seek(0, io.SEEK_END)
    if handle.tell() < here + size + 1:
        return False
    handle.seek(here + size)
    return True


def iter_records(path: str, with_payload: bool = True, payload_limit: int | None = None,
                 source: str | None = None) -> Iterator[JournalEntry]:
    """The complete records of a journal; a record torn by a crash ends the iteration, a
    complete record whose header is not what an executor writes raises WireError, naming
    ``source`` (the journal's path by default) and the record. A payload larger than
    ``payload_limit`` is not read (its record's payload is empty)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        number = 0
        while (header := _read_header(handle, f"{source or path}, record {number}")) is not None:
            size = header.payload_len
            if not _skip_payload(handle, size):  # torn by a crash: the payload is not all there
                return
            payload = b""
            if with_payload and (payload_limit is None or size <= payload_limit):
                handle.seek(-size, io.SEEK_CUR)
                payload = handle.read(size)
            end = handle.read(1)
            if end != b"\n":
                if end:
                    raise WireError(f"{source or path}, record {number}: its payload is followed by {end!r}, "
                                    "not its newline")
                return
            yield JournalEntry(header, payload)
            number += 1


def complete_length(path: str) -> int:
    """Bytes of a journal its complete records take (what follows is a record torn by a crash)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return 0
    with handle:
        end = 0
        with contextlib.suppress(WireError):  # a header no executor writes: the journal ends before it
            while (header := _read_header(handle, path)) is not None:
                if not _skip_payload(handle, header.payload_len) or handle.read(1) != b"\n":
                    break
                end = handle.tell()
        return end


def results_by_name(records: list[JournalEntry], loads: Callable[[bytes], V]) -> dict[str, list[V]]:
    """netunicorn's shape: task name -> list of Results, in the order they finished."""
    out: dict[str, list[V]] = {}
    for record in sorted(records, key=lambda r: r.header.seq):
        out.setdefault(record.name, []).append(loads(record.payload))
    return out


def results_by_stage(records: list[JournalEntry], loads: Callable[[bytes], V]) -> list[V | list[V]]:
    """The tutorial's shape: one entry per stage that ran, the Result of a single-task
    stage or the list of Results (in pipeline order) of a parallel stage."""
    stages: dict[int, dict[int, JournalEntry]] = {}
    sizes: dict[int, int] = {}
    for record in records:
        stage = record.header.stage
        stages.setdefault(stage, {})[record.header.index] = record
        sizes[stage] = record.header.stage_size
    out: list[V | list[V]] = []
    for stage in sorted(stages):
        ordered = [loads(stages[stage][i].payload) for i in sorted(stages[stage])]
        out.append(ordered[0] if sizes[stage] == 1 else ordered)
    return out


class PreviousSteps(Mapping[str, list[object]]):
    """``task.previous_steps``: task name -> list of Results of every task that ran before,
    read from the journal when asked for (a large result is not loaded unless used)."""

    def __init__(self, journal_path: str, index: dict[str, list[tuple[int, int]]]) -> None:
        self._path = journal_path
        self._index = index

    def __getitem__(self, name: str) -> list[object]:
        places = self._index[name]
        out = []
        with open(self._path, "rb") as handle:
            for offset, size in places:
                handle.seek(offset)
                out.append(loads_result(handle.read(size)))
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"PreviousSteps({list(self._index)})"


def unreported(workdir: str) -> list[ReportedTask]:
    """Headers (name, result type, preview, times) of tasks finished since the call before the last
    one, so the controller knows what finished even if this host is lost before its results are
    fetched: each header goes with two reports in a row (the controller keeps each task once), and
    a report the link lost is made good by the next."""
    mark_path = os.path.join(workdir, REPORTED)
    mark = ReportedMark.read(mark_path) or ReportedMark(seq=-1)
    newest = mark.seq
    fresh: list[ReportedTask] = []
    for record in iter_records(os.path.join(workdir, JOURNAL), with_payload=False):
        if record.header.seq > mark.previous:
            fresh.append(record.header.reported())
            newest = max(newest, record.header.seq)
            if len(fresh) >= REPORT_LIMIT:
                break
    if (newest, mark.seq) != (mark.seq, mark.previous):
        write_json_atomic(mark_path, ReportedMark(seq=newest, previous=mark.seq).to_json())
    return fresh
