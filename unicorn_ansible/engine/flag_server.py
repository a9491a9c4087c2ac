"""The controller's flag store for one run: values in memory, kept in the run folder's flags file
(``RunDir.flags_file``), served on a Unix socket while the run's execution play runs.

Hosts reach the socket through the reverse tunnel the run's ssh arguments open on their
loopback (``RemoteForward 127.0.0.1:PORT SOCKET``, see ``compiler/settings.py``); local-connection hosts, the
client and the CLI connect to the socket itself. Every request carries the run's token:
the tunnel's port on a host is open to that host's other users.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
import socketserver
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from ..errors import RunError
from ..model.flags import MAX_MESSAGE, FlagError, FlagValues, request
from .rundir import RunDir, read_json, write_json

MAX_WAIT = 600.0


def new_endpoint(run_dir: Path) -> Dict[str, Any]:
    """Where a run's flag store will listen: a short socket path (a Unix socket path is limited
    to about 100 bytes), a port for the hosts' end of the tunnel, and a token."""
    folder = Path(tempfile.gettempdir()) / f"unicorn-ansible-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
    return {
        "socket": str(folder / f"{digest}.sock"),
        "port": 20000 + secrets.randbelow(40000),
        "token": secrets.token_hex(16),
    }


def read_endpoint(run_dir: Path) -> Optional[Dict[str, Any]]:
    return read_json(RunDir(run_dir).flags_endpoint_file)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise FlagError("a flag name is a text of 1 to 200 characters")
    return name


def _check_value(value: Any) -> FlagValues:
    if not isinstance(value, dict):
        raise FlagError("a flag value is {\"text_value\": ..., \"int_value\": ...}")
    text, number = value.get("text_value"), value.get("int_value", 0)
    if text is not None and not isinstance(text, str):
        raise FlagError("text_value must be a text or null")
    if number is None:
        number = 0
    if isinstance(number, bool) or not isinstance(number, int):
        raise FlagError("int_value must be an integer")
    return FlagValues(text, number)


class FlagStore:
    """Flags of one run, thread-safe, written through to the run folder's flags file."""

    def __init__(self, run_dir: Path) -> None:
        self.path = RunDir(run_dir).flags_file
        self.changed = threading.Condition()
        self.flags: Dict[str, FlagValues] = {}
        try:
            stored = read_json(self.path) or {}
            self.flags = {name: _check_value(value) for name, value in stored.items()}
        except FlagError:
            pass

    def _save(self) -> None:
        write_json(self.path, {name: value.dict() for name, value in self.flags.items()}, sort_keys=True)

    def get(self, name: str) -> Optional[FlagValues]:
        with self.changed:
            return self.flags.get(name)

    def set(self, name: str, value: FlagValues) -> FlagValues:
        with self.changed:
            self.flags[name] = value
            self._save()
            self.changed.notify_all()
            return value

    def add(self, name: str, by: int) -> FlagValues:
        with self.changed:
            current = self.flags.get(name) or FlagValues()
            value = FlagValues(current.text_value, current.int_value + by)
            self.flags[name] = value
            self._save()
            self.changed.notify_all()
            return value

    def wait(self, name: str, value: FlagValues, timeout: float) -> Optional[FlagValues]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.flags.get(name) != value:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)
            return value

    def handle(self, message: Dict[str, Any]) -> Dict[str, Any]:
        op = message.get("op")
        if op == "list":
            with self.changed:
                return {"ok": True, "flags": {name: value.dict() for name, value in self.flags.items()}}
        name = _check_name(message.get("name"))
        if op == "get":
            value = self.get(name)
        elif op == "set":
            value = self.set(name, _check_value(message.get("value")))
        elif op == "add":
            by = message.get("by", 1)
            if isinstance(by, bool) or not isinstance(by, int):
                raise FlagError("'by' must be an integer")
            value = self.add(name, by)
        elif op == "wait":
            timeout = message.get("timeout", 60)
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
                raise FlagError("'timeout' must be a number of seconds")
            value = self.wait(name, _check_value(message.get("value")), min(float(timeout), MAX_WAIT))
            if value is None:
                return {"ok": False, "error": "timeout"}
        else:
            raise FlagError(f"unknown operation {op!r}")
        return {"ok": True, "value": None if value is None else value.dict()}


class _Handler(socketserver.StreamRequestHandler):
    server: "_Server"

    def handle(self) -> None:
        line = self.rfile.readline(MAX_MESSAGE + 1)
        try:
            if len(line) > MAX_MESSAGE:
                raise FlagError("request too long")
            message = json.loads(line)
            if not isinstance(message, dict):
                raise FlagError("a request is a JSON object")
            if not hmac.compare_digest(str(message.get("token", "")), self.server.token):
                raise FlagError("wrong token: this connection is not from the run's hosts")
            answer = self.server.store.handle(message)
        except (ValueError, FlagError) as exc:
            answer = {"ok": False, "error": str(exc)}
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(answer).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 512  # every task of every host may call at once

    def __init__(self, path: str, store: FlagStore, token: str) -> None:
        self.store = store
        self.token = token
        super().__init__(path, _Handler)


@contextlib.contextmanager
def serve_flags(run_dir: Path) -> Iterator[Optional[FlagStore]]:
    """Serve the run's flags while the block runs (nothing if the run has no flag endpoint)."""
    endpoint = read_endpoint(run_dir)
    if endpoint is None:
        yield None
        return
    path = endpoint["socket"]
    Path(path).parent.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    store = FlagStore(run_dir)
    server = _Server(path, store, endpoint["token"])
    os.chmod(path, 0o600)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="unicorn-flags", daemon=True)
    thread.start()
    try:
        yield store
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _live(endpoint: Dict[str, Any]) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(endpoint["socket"])
            return True
        except OSError:
            return False


def flag_request(run_dir: Path, message: Dict[str, Any]) -> Dict[str, Any]:
    """A flag request from the client or the CLI: to the run's live store, or, when the run is not
    executing, to its flags file (values set then are there when the execution starts)."""
    endpoint = read_endpoint(run_dir)
    if endpoint is None:
        raise RunError(f"run {Path(run_dir).name} has no flags (it was compiled by an older unicorn-ansible)")
    if _live(endpoint):
        try:
            return request(message, f"unix:{endpoint['socket']}", endpoint["token"], timeout=None)
        except FlagError as exc:
            raise RunError(str(exc)) from exc
    try:
        return FlagStore(run_dir).handle(message)
    except FlagError as exc:
        raise RunError(str(exc)) from exc
