"""The controller's flag store for one run, served while the run's execution play runs.

Hosts reach it through the reverse tunnel the run's ssh arguments open on their loopback
(``RemoteForward 127.0.0.1:PORT SOCKET``, see ``compiler``; ``ExitOnForwardFailure`` makes a host
where the port is taken fail at once); local-connection hosts, the client and the CLI connect to the
socket itself, and local hosts' netunicorn tasks to ``127.0.0.1:LOCAL_PORT``. The same listeners speak
two protocols: ours (a challenge-response on the run's token, ``model/flags.py``) and netunicorn's
HTTP (``flag_http``). The server is ``flag_loop``, the values ``flag_store``.

The socket lives in a folder only the user owns (created 0700 under ``$XDG_RUNTIME_DIR`` or the
temporary folder, checked before use: ``sockets``); a folder someone else made is refused with one line.
"""

from __future__ import annotations

import contextlib
import enum
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..model.flags import FlagError, request
from ..node.wire import FlagsEndpoint, WireError
from .flag_loop import FlagLoop
from .flag_store import FlagStore
from .rundir import RunDir, write_json
from .sockets import own_folder, private_folder, socket_base

__all__ = ["FlagEndpoint", "FlagReach", "FlagStore", "flag_request", "new_endpoint", "read_endpoint", "write_endpoint",
           "serve_flags", "task_settings"]

SOCKET_NAME = "flags.sock"


#: where a run's flag store listens: flags-endpoint.json's record (socket, port, token, experiment_id,
#: local_port), written and read as the wire's one record of it
FlagEndpoint = FlagsEndpoint


class FlagReach(enum.Enum):
    """How tasks on a host reach the store (each connection kind says which: connections/)."""

    #: the host is the controller: the store's Unix socket itself (and a loopback port for netunicorn's HTTP)
    SOCKET = "the controller's socket"
    #: every connection carries a reverse tunnel to the host's loopback (OpenSSH's RemoteForward)
    TUNNEL = "a reverse tunnel on the host's loopback"
    #: nothing Ansible does for the connection can carry it
    NONE = "none"


def _folder_prefix() -> str:
    return f"unicorn-ansible-{os.getuid()}-"


def _random_port() -> int:
    """A port below Linux's default range of outgoing ports (32768-60999), so none of them holds it."""
    return 20000 + secrets.randbelow(12000)


def new_endpoint(run_dir: Path, local: bool = False) -> FlagEndpoint:
    """Where a run's flag store will listen: a socket in a folder of its own, a port for the hosts'
    end of the tunnel, the token of our protocol, netunicorn's experiment id (the capability of its
    HTTP protocol) and, with ``local`` hosts, a loopback port on the controller for their HTTP."""
    folder = socket_base() / f"{_folder_prefix()}{secrets.token_hex(6)}"
    return FlagEndpoint(socket=str(folder / SOCKET_NAME), port=_random_port(), token=secrets.token_hex(16),
                        experiment_id=secrets.token_hex(16), local_port=_random_port() if local else None)


def write_endpoint(run_dir: Path, endpoint: FlagEndpoint) -> None:
    """Keep the run's endpoint in flags-endpoint.json (private: it holds the token)."""
    write_json(RunDir(run_dir).flags_endpoint_file, endpoint.to_json(), 0o600)


def read_endpoint(run_dir: Path) -> FlagEndpoint | None:
    """The run's endpoint (None: it has none); a file that is not the record is refused, naming it."""
    try:
        return FlagEndpoint.read(RunDir(run_dir).flags_endpoint_file)
    except WireError as exc:
        raise RunError(f"{exc}; it was changed by hand or by another version: prepare the run again") from None


def task_settings(endpoint: FlagEndpoint, reach: FlagReach, executor_id: str) -> dict[str, Any]:
    """What a node's executor gives its tasks (node.json's ``flags``): our address and token, and
    netunicorn's variables (``environment``) for netunicorn-library's flag tasks. A host whose
    connection cannot reach the store gets the tunnel's address too: a flag call there fails saying
    it cannot reach the store over a tunnel (a run known to use flags there is refused at prepare)."""
    environment = {"NETUNICORN_EXPERIMENT_ID": endpoint.experiment_id or "", "NETUNICORN_EXECUTOR_ID": executor_id}
    local = reach is FlagReach.SOCKET
    port = endpoint.local_port if local else endpoint.port
    if port:
        environment["NETUNICORN_GATEWAY_ENDPOINT"] = f"http://127.0.0.1:{port}"
    return {
        "endpoint": f"unix:{endpoint.socket}" if local else f"tcp:127.0.0.1:{endpoint.port}",
        "token": endpoint.token,
        "environment": environment,
    }


def _own_folder(folder: Path) -> None:
    """Create the socket's folder 0700, or accept it only if it is ours and private already."""
    own_folder(folder, "the flag socket folder")


def _dead_socket(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def remove_stale_sockets(base: Path) -> int:
    """Remove the socket folders of this user's runs whose store is gone (a killed controller)."""
    removed = 0
    with contextlib.suppress(OSError):
        for folder in base.iterdir():
            if folder.name.startswith(_folder_prefix()) and private_folder(folder) and \
                    _dead_socket(folder / SOCKET_NAME):
                with contextlib.suppress(OSError):
                    (folder / SOCKET_NAME).unlink()
                    folder.rmdir()
                    removed += 1
    return removed


def _unix_listener(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(4096)
    return listener


def _tcp_listener(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # refused only by another listener
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as exc:
        listener.close()
        raise RunError(f"the flag store cannot listen on 127.0.0.1:{port} for this run's local hosts "
                       f"({exc.strerror or exc}); compile the run again to choose another port") from None
    listener.listen(4096)
    return listener


def _listeners(endpoint: FlagEndpoint) -> list[socket.socket]:
    path = Path(endpoint.socket)
    _own_folder(path.parent)
    listeners = [_unix_listener(path)]
    if endpoint.local_port:
        try:
            listeners.append(_tcp_listener(endpoint.local_port))
        except RunError:
            listeners[0].close()
            raise
    return listeners


@contextlib.contextmanager
def serve_flags(run_dir: Path) -> Iterator[FlagStore | None]:
    """Serve the run's flags while the block runs (nothing if the run has no flag endpoint)."""
    endpoint = read_endpoint(run_dir)
    if endpoint is None:
        yield None
        return
    path = Path(endpoint.socket)
    remove_stale_sockets(path.parent.parent)
    store = FlagStore(run_dir)
    loop = FlagLoop(store, endpoint.token, endpoint.experiment_id, _listeners(endpoint))
    thread = threading.Thread(target=loop.serve, name="unicorn-flags", daemon=True)
    thread.start()
    try:
        yield store
    finally:
        loop.stop()
        thread.join(10)
        for listener in loop.listeners:
            listener.close()
        with contextlib.suppress(OSError):
            path.unlink()
            path.parent.rmdir()


def _live(endpoint: FlagEndpoint) -> bool:
    if not private_folder(Path(endpoint.socket).parent):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(endpoint.socket)
            return True
        except OSError:
            return False


def flag_request(run_dir: Path, message: dict[str, Any]) -> dict[str, Any]:
    """A flag request from the client or the CLI: to the run's live store, or, when the run is not
    executing, to its flags.json (values set then are there when the execution starts)."""
    endpoint = read_endpoint(run_dir)
    if endpoint is None:
        raise RunError(f"run {Path(run_dir).name} has no flags (it was compiled by an older unicorn-ansible)")
    try:
        if _live(endpoint):
            return request(message, f"unix:{endpoint.socket}", endpoint.token, timeout=60)
        return FlagStore(run_dir).handle(message)
    except FlagError as exc:
        raise RunError(str(exc)) from exc

