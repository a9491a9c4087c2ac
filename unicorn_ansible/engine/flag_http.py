"""netunicorn's flag protocol over HTTP, as its gateway serves it, for netunicorn-library's flag tasks.

    GET  /api/v1/experiment/ID/flag/NAME            200 {"text_value", "int_value"}; 404 null if unset
    POST /api/v1/experiment/ID/flag/NAME            JSON FlagValues body; 200 null; 400 if both are null
    POST /api/v1/experiment/ID/flag/NAME/increment  200 null (an unset flag counts from 0)
    POST /api/v1/experiment/ID/flag/NAME/decrement  200 null

netunicorn's requests carry no credentials: ID, the run's random experiment id, is the capability
(``NETUNICORN_EXPERIMENT_ID``); any other ID gets 404 as an unknown path does. One request per
connection, bounded head and body; the answer closes the connection.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from ..model.flags import MAX_LINE, FlagError
from .flag_store import FlagStore, check_name, check_value, parse_json

METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ", b"OPTIONS ")
MAX_HEAD = 8192
MAX_BODY = MAX_LINE
_PREFIX = ("", "api", "v1", "experiment")


class HttpError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class HttpRequest:
    method: str
    path: str
    body: bytes


def looks_like_http(data: bytes) -> bool:
    """True when the first bytes of a connection can start an HTTP request (more may be needed)."""
    return any(method.startswith(data[:len(method)]) for method in METHODS)


def _content_length(head: list[bytes]) -> int:
    length = 0
    for line in head[1:]:
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"transfer-encoding":
            raise HttpError(411, {"detail": "a body needs Content-Length"})
        if key == b"content-length":
            if not value.strip().isdigit() or len(value.strip()) > 9:
                raise HttpError(400, {"detail": "bad Content-Length"})
            length = int(value.strip())
    if length > MAX_BODY:
        raise HttpError(413, {"detail": f"a body is at most {MAX_BODY} bytes"})
    return length


def read_request(inbox: bytes | bytearray) -> HttpRequest | None:
    """The request in ``inbox`` when it is complete, None while more is needed; HttpError if bad."""
    end = inbox.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        if len(inbox) > MAX_HEAD:
            raise HttpError(431, {"detail": f"request head over {MAX_HEAD} bytes"})
        return None
    head = bytes(inbox[:end]).split(b"\r\n")
    length = _content_length(head)
    if len(inbox) < end + 4 + length:
        return None
    parts = head[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise HttpError(400, {"detail": "bad request line"})
    method, target = parts[0].decode("ascii", "replace"), parts[1].decode("ascii", "replace")
    return HttpRequest(method, target.partition("?")[0], bytes(inbox[end + 4:end + 4 + length]))


def _route(path: str, experiment_id: str | None) -> tuple[str, str]:
    """(flag name, operation) of a flag path with the run's experiment id; HttpError 404 otherwise."""
    parts = path.split("/")
    if (tuple(parts[:4]) != _PREFIX or len(parts) not in (7, 8) or parts[5] != "flag" or experiment_id is None
            or not hmac.compare_digest(parts[4].encode(), experiment_id.encode())):
        raise HttpError(404, {"detail": "Not Found"})
    operation = parts[7] if len(parts) == 8 else ""
    if operation not in ("", "increment", "decrement"):
        raise HttpError(404, {"detail": "Not Found"})
    try:
        return check_name(unquote(parts[6], errors="strict")), operation
    except (FlagError, UnicodeDecodeError) as exc:
        raise HttpError(422, {"detail": str(exc)}) from None


def _set(store: FlagStore, name: str, body: bytes) -> tuple[int, Any]:
    try:
        values = parse_json(body)
        if isinstance(values, dict) and values.get("text_value") is None and values.get("int_value") is None:
            return 400, "Either text_value or int_value must be set"
        store.set(name, check_value(values))
    except FlagError as exc:
        raise HttpError(422, {"detail": str(exc)}) from None
    return 200, None


def answer(request: HttpRequest, store: FlagStore, experiment_id: str | None) -> tuple[int, Any, str | None]:
    """(status, JSON body, the flag changed or None) for one request."""
    name, operation = _route(request.path, experiment_id)
    if request.method == "GET" and not operation:
        value = store.get(name)
        return (404, None, None) if value is None else (200, value.dict(), None)
    if request.method != "POST":
        raise HttpError(405, {"detail": "Method Not Allowed"})
    if operation:
        try:
            store.add(name, 1 if operation == "increment" else -1)
        except FlagError as exc:
            raise HttpError(422, {"detail": str(exc)}) from None
        return 200, None, name
    status, body = _set(store, name, request.body)
    return status, body, name if status == 200 else None


def response(status: int, body: Any) -> bytes:
    data = json.dumps(body).encode()
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n").encode() + data
