"""The journal: append-only records of finished tasks (format in protocol's docstring)."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from .files import read_json, write_json_atomic
from .outcome import loads_result
from .protocol import JOURNAL, REPORTED, REPORTED_FIELDS, SUCCESS

#: at most this many task headers go back with one progress report
REPORT_LIMIT = 500


@dataclass
class Record:
    """One finished task as the journal keeps it; ``payload`` is its pickled Result."""

    header: dict[str, Any]
    payload: bytes

    @property
    def name(self) -> str:
        return self.header["name"]

    @property
    def successful(self) -> bool:
        return self.header["type"] == SUCCESS


def append_record(journal: IO[bytes], header: dict[str, Any], payload_source: IO[bytes], size: int) -> int:
    """Append one record, copying ``size`` payload bytes from ``payload_source``; return the payload offset."""
    header = dict(header, payload_len=size)
    journal.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
    offset = journal.tell()
    shutil.copyfileobj(payload_source, journal, 1024 * 1024)
    journal.write(b"\n")
    journal.flush()
    return offset


#: a header line longer than this is not one the executor wrote
HEADER_LIMIT = 64 * 1024
#: the largest payload a record may claim (1 TiB)
PAYLOAD_LIMIT = 1 << 40
_REQUIRED_INTS = ("seq", "stage", "index", "stage_size", "payload_len")
_OPTIONAL_TEXTS = ("type", "kind", "preview", "log")
_OPTIONAL_TIMES = ("start", "end")


class MalformedRecord(ValueError):
    """A complete journal record whose header is not what an executor writes (a host to distrust)."""


def _is_int(value: Any, limit: int = PAYLOAD_LIMIT) -> bool:
    return type(value) is int and 0 <= value <= limit


def check_header(header: Any) -> dict[str, Any]:
    """The header if every field has the type and range the executor writes; else MalformedRecord."""
    if not isinstance(header, dict):
        raise MalformedRecord(f"a record header is a {type(header).__name__}, not an object")
    for field in _REQUIRED_INTS:
        if not _is_int(header.get(field)):
            raise MalformedRecord(f"a record header's {field} is {header.get(field)!r:.60}, "
                                  f"not a whole number from 0 to {PAYLOAD_LIMIT}")
    if type(header.get("name")) is not str:
        raise MalformedRecord(f"a record header's name is {header.get('name')!r:.60}, not a text")
    for field in _OPTIONAL_TEXTS:
        if header.get(field) is not None and type(header[field]) is not str:
            raise MalformedRecord(f"a record header's {field} is {header[field]!r:.60}, not a text")
    for field in _OPTIONAL_TIMES:
        value = header.get(field)
        if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
            raise MalformedRecord(f"a record header's {field} is {value!r:.60}, not a time")
    return header


def _read_header(handle: IO[bytes]) -> tuple[dict[str, Any], int] | None:
    """The next header and its payload's size; None at the end or at a record torn by a crash."""
    line = handle.readline(HEADER_LIMIT + 1)
    if not line.endswith(b"\n"):
        if len(line) > HEADER_LIMIT:
            raise MalformedRecord(f"a record header is longer than {HEADER_LIMIT} bytes")
        return None
    try:
        header = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise MalformedRecord(f"a record header is not JSON ({type(exc).__name__})") from None
    return check_header(header), header["payload_len"]


def _skip_payload(handle: IO[bytes], size: int) -> bool:
    """Seek past a payload of ``size`` bytes; False if the file is too short to hold it."""
    here = handle.tell()
    handle.seek(0, io.SEEK_END)
    if handle.tell() < here + size + 1:
        return False
    handle.seek(here + size)
    return True


def iter_records(path: str, with_payload: bool = True, payload_limit: int | None = None) -> Iterator[Record]:
    """The complete records of a journal; a record torn by a crash ends the iteration, a
    complete record with a malformed header raises MalformedRecord. A payload larger than
    ``payload_limit`` is not read (its record's payload is empty)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        while (read := _read_header(handle)) is not None:
            header, size = read
            if not _skip_payload(handle, size):  # torn by a crash: the payload is not all there
                return
            payload = b""
            if with_payload and (payload_limit is None or size <= payload_limit):
                handle.seek(-size, io.SEEK_CUR)
                payload = handle.read(size)
            end = handle.read(1)
            if end != b"\n":
                if end:
                    raise MalformedRecord(f"a record's payload is followed by {end!r}, not its newline")
                return
            yield Record(header, payload)


def results_by_name(records: list[Record], loads: Callable[[bytes], Any] = loads_result) -> dict[str, list[Any]]:
    """netunicorn's shape: task name -> list of Results, in the order they finished."""
    out: dict[str, list[Any]] = {}
    for record in sorted(records, key=lambda r: r.header["seq"]):
        out.setdefault(record.name, []).append(loads(record.payload))
    return out


def results_by_stage(records: list[Record], loads: Callable[[bytes], Any] = loads_result) -> list[Any]:
    """The tutorial's shape: one entry per stage that ran, the Result of a single-task
    stage or the list of Results (in pipeline order) of a parallel stage."""
    stages: dict[int, dict[int, Record]] = {}
    sizes: dict[int, int] = {}
    for record in records:
        stage = record.header["stage"]
        stages.setdefault(stage, {})[record.header["index"]] = record
        sizes[stage] = record.header["stage_size"]
    out: list[Any] = []
    for stage in sorted(stages):
        ordered = [loads(stages[stage][i].payload) for i in sorted(stages[stage])]
        out.append(ordered[0] if sizes[stage] == 1 else ordered)
    return out


class PreviousSteps(Mapping[str, list[Any]]):
    """``task.previous_steps``: task name -> list of Results of every task that ran before,
    read from the journal when asked for (a large result is not loaded unless used)."""

    def __init__(self, journal_path: str, index: dict[str, list[tuple[int, int]]]) -> None:
        self._path = journal_path
        self._index = index

    def __getitem__(self, name: str) -> list[Any]:
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


def unreported(workdir: str) -> list[dict[str, Any]]:
    """Headers (name, result type, preview, times) of tasks finished since the last call, so
    the controller knows what finished even if this host is lost before its results are fetched."""
    mark_path = os.path.join(workdir, REPORTED)
    reported = (read_json(mark_path) or {}).get("seq", -1)
    fresh = []
    for record in iter_records(os.path.join(workdir, JOURNAL), with_payload=False):
        if record.header["seq"] > reported:
            fresh.append({k: record.header.get(k) for k in REPORTED_FIELDS})
            if len(fresh) >= REPORT_LIMIT:
                break
    if fresh:
        write_json_atomic(mark_path, {"seq": fresh[-1]["seq"]})
    return fresh
