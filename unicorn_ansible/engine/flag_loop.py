"""The flag store's server: one thread, one selector, every connection a small state machine.

Anyone who can reach a host's forwarded port can connect, so nothing here trusts a peer before it
has proven it knows the run's token (or, for netunicorn's HTTP protocol, named the run's experiment
id). Until then a peer is *pending*: it has REQUEST_SECONDS from its connection to a complete request,
its input is bounded, all pending input together is bounded by MEMORY_BUDGET, and the number of
connections is bounded by what the process's file limit allows. When a new connection finds no room,
the oldest pending peer is dropped (a quick, honest client finishes long before it is oldest; one
dropped before its handshake is told ``busy`` and tries again, nothing having happened).
"""

from __future__ import annotations

import binascii
import contextlib
import errno
import hmac
import json
import resource
import secrets
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ..model.flags import BUSY, HELLO, MAX_LINE, NONCE_BYTES, FlagError, FlagValues, mac
from . import flag_http
from .flag_store import FlagStore, check_wait, parse_json

REQUEST_SECONDS = 5.0     # from connecting to a complete, authenticated request
ANSWER_SECONDS = 30.0     # to take an answer once it is ready
MEMORY_BUDGET = 8 << 20   # bytes held for peers not yet authenticated, all together
MAX_CONNECTIONS = 1024
_HELLO_LINE = len(HELLO) + 2 * NONCE_BYTES + 1
_TICK = 0.1


def connection_limit() -> int:
    """How many connections the store keeps open: half of what the file limit leaves, at most 1024."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, (soft - 64) // 2))


@dataclass(eq=False)
class Peer:
    sock: socket.socket
    deadline: float
    stage: str = "new"            # new, request (after the handshake), http, waiting, answering
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytes = b""
    nonces: tuple[bytes, bytes] = (b"", b"")
    waiting: tuple[str, FlagValues] | None = None


class FlagLoop:
    """Serve ``store`` on ``listeners`` until ``stop``; run ``serve`` in a thread of its own."""

    def __init__(self, store: FlagStore, token: str, experiment_id: str | None,
                 listeners: list[socket.socket]) -> None:
        self.store, self.token, self.experiment_id = store, token, experiment_id
        self.listeners = listeners
        self.selector = selectors.DefaultSelector()
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.pending: dict[socket.socket, Peer] = {}   # oldest first
        self.settled: dict[socket.socket, Peer] = {}   # authenticated: waiting or being answered
        self.buffered = 0
        self.limit = connection_limit()
        self.paused_until = 0.0
        self.stopped = False
        self.problems = 0  # connections closed on an unexpected error (never printed: counted)

    # -- the loop ----------------------------------------------------------------------------
    def serve(self) -> None:
        for listener in self.listeners:
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, "listen")
        self.selector.register(self.wake_reader, selectors.EVENT_READ, "wake")
        last_sweep = 0.0
        while not self.stopped:
            for key, mask in self.selector.select(_TICK):
                self._dispatch(key, mask)
            now = time.monotonic()
            if now - last_sweep >= _TICK:
                last_sweep = now
                self._sweep(now)
        self._close_all()

    def stop(self) -> None:
        self.stopped = True
        with contextlib.suppress(OSError):
            self.wake_writer.send(b"x")

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.data == "listen":
            self._accept(key.fileobj)  # type: ignore[arg-type]
            return
        if key.data == "wake":
            with contextlib.suppress(OSError):
                self.wake_reader.recv(64)
            return
        peer: Peer = key.data
        try:
            if mask & selectors.EVENT_WRITE:
                self._flush(peer)
            elif mask & selectors.EVENT_READ:
                self._receive(peer)
        except Exception:  # one peer's trouble never stops the store
            self.problems += 1
            self._close(peer)

    def _sweep(self, now: float) -> None:
        if self.paused_until and now >= self.paused_until:
            self.paused_until = 0.0
            for listener in self.listeners:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.register(listener, selectors.EVENT_READ, "listen")
        while self.pending:
            oldest = next(iter(self.pending.values()))
            if oldest.deadline > now:
                break
            self._close(oldest)
        for peer in [p for p in self.settled.values() if p.deadline <= now]:
            if peer.stage == "waiting":
                self._answer(peer, {"ok": False, "error": "timeout"})
            else:
                self._close(peer)

    # -- connections -------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._out_of_files()
                return
            self._admit(sock)

    def _out_of_files(self) -> None:
        if self.pending:
            self._evict_oldest()
        else:  # nothing to drop: stop accepting for a moment rather than spin
            self.paused_until = time.monotonic() + _TICK
            for listener in self.listeners:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(listener)

    def _admit(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        if len(self.pending) + len(self.settled) >= self.limit:
            if not self.pending:
                with contextlib.suppress(OSError):
                    sock.send(BUSY)
                sock.close()
                return
            self._evict_oldest()
        peer = Peer(sock, time.monotonic() + REQUEST_SECONDS)
        self.pending[sock] = peer
        self.selector.register(sock, selectors.EVENT_READ, peer)

    def _evict_oldest(self) -> None:
        """Drop the oldest pending peer, telling it to try again (after the handshake: authenticated)."""
        oldest = next(iter(self.pending.values()))
        if oldest.stage == "request":
            body = json.dumps({"ok": False, "error": "busy", "retry": True}).encode()
            self._refuse(oldest, mac(self.token, "answer", *oldest.nonces, body) + b" " + body + b"\n")
        else:
            self._refuse(oldest, BUSY)

    def _close(self, peer: Peer) -> None:
        self.buffered -= len(peer.inbox) if peer.sock in self.pending else 0
        self.pending.pop(peer.sock, None)
        self.settled.pop(peer.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(peer.sock)
        peer.sock.close()

    def _close_all(self) -> None:
        for peer in [*self.pending.values(), *self.settled.values()]:
            self._close(peer)
        self.selector.close()
        self.wake_reader.close()
        self.wake_writer.close()

    def _settle(self, peer: Peer) -> None:
        """The peer proved it may use the store: it no longer counts as pending."""
        self.buffered -= len(peer.inbox)
        self.pending.pop(peer.sock, None)
        self.settled[peer.sock] = peer
        peer.inbox = bytearray()

    # -- input -------------------------------------------------------------------------------
    def _receive(self, peer: Peer) -> None:
        try:
            data = peer.sock.recv(16384)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data or peer.stage in ("waiting", "answering"):
            self._close(peer)  # gone, or talking out of turn
            return
        peer.inbox += data
        self.buffered += len(data)
        if self.buffered > MEMORY_BUDGET and next(iter(self.pending.values())) is not peer:
            self._evict_oldest()
        {"new": self._first_bytes, "request": self._request, "http": self._http}[peer.stage](peer)

    def _first_bytes(self, peer: Peer) -> None:
        head = bytes(peer.inbox[:len(HELLO)])
        if flag_http.looks_like_http(head):
            peer.stage = "http"
            self._http(peer)
        elif not HELLO.startswith(head):
            self._close(peer)
        elif b"\n" in peer.inbox:
            self._handshake(peer)
        elif len(peer.inbox) >= _HELLO_LINE:
            self._close(peer)

    def _handshake(self, peer: Peer) -> None:
        line, _, rest = bytes(peer.inbox).partition(b"\n")
        nonce_client = line[len(HELLO):]
        try:
            valid = len(nonce_client) == 2 * NONCE_BYTES and len(binascii.unhexlify(nonce_client)) == NONCE_BYTES
        except binascii.Error:
            valid = False
        if not valid or rest:
            self._close(peer)
            return
        nonce_store = secrets.token_hex(NONCE_BYTES).encode()
        peer.nonces = (nonce_client, nonce_store)
        self.buffered -= len(peer.inbox)
        peer.inbox = bytearray()
        peer.stage = "request"
        peer.sock.send(nonce_store + b" " + mac(self.token, "store", nonce_client, nonce_store) + b"\n")

    def _request(self, peer: Peer) -> None:
        end = peer.inbox.find(b"\n")
        if max(end, len(peer.inbox) if end < 0 else 0) > MAX_LINE:  # refused unread: too long for any request
            body = json.dumps({"ok": False, "error": f"a request is at most {MAX_LINE} bytes"}).encode()
            self._refuse(peer, mac(self.token, "answer", *peer.nonces, body) + b" " + body + b"\n")
            return
        if end < 0:
            return
        signature, _, body = bytes(peer.inbox[:end]).partition(b" ")
        if end + 1 != len(peer.inbox) or not hmac.compare_digest(
                signature, mac(self.token, "request", *peer.nonces, body)):
            self._close(peer)  # not from a holder of the token: no answer at all
            return
        self._settle(peer)
        self._serve_request(peer, body)

    def _http(self, peer: Peer) -> None:
        try:
            request = flag_http.read_request(peer.inbox)
            if request is None:
                return
            status, body, changed = flag_http.answer(request, self.store, self.experiment_id)
            self._settle(peer)
        except flag_http.HttpError as exc:  # a short answer, and the peer is gone: it holds nothing
            self._refuse(peer, flag_http.response(exc.status, exc.detail))
            return
        self._send(peer, flag_http.response(status, body))
        if changed:
            self._wake_waiters(changed)

    # -- answers -----------------------------------------------------------------------------
    def _serve_request(self, peer: Peer, body: bytes) -> None:
        message: Any = None
        try:
            message = parse_json(body)
            if isinstance(message, dict) and message.get("op") == "wait":
                self._wait(peer, message)
                return
            answer = self.store.handle(message)
        except FlagError as exc:
            answer = {"ok": False, "error": str(exc)}
        self._answer(peer, answer)
        if answer.get("ok") and isinstance(message, dict) and message.get("op") in ("set", "add"):
            self._wake_waiters(message["name"])

    def _wait(self, peer: Peer, message: dict[str, Any]) -> None:
        name, wanted, seconds = check_wait(message)
        if self.store.get(name) == wanted or seconds <= 0:
            self._answer(peer, self.store.handle(message))
            return
        peer.stage, peer.waiting = "waiting", (name, wanted)
        peer.deadline = time.monotonic() + seconds

    def _wake_waiters(self, name: str) -> None:
        value = self.store.get(name)
        if value is None:
            return
        for peer in [p for p in self.settled.values() if p.waiting and p.waiting[0] == name]:
            if peer.waiting is not None and peer.waiting[1] == value:
                self._answer(peer, {"ok": True, "value": value.dict()})

    def _answer(self, peer: Peer, answer: dict[str, Any]) -> None:
        body = json.dumps(answer).encode()
        peer.waiting = None
        self._send(peer, mac(self.token, "answer", *peer.nonces, body) + b" " + body + b"\n")

    def _refuse(self, peer: Peer, data: bytes) -> None:
        with contextlib.suppress(OSError):
            peer.sock.send(data)
        self._close(peer)

    def _send(self, peer: Peer, data: bytes) -> None:
        peer.stage, peer.outbox = "answering", data
        peer.deadline = time.monotonic() + ANSWER_SECONDS
        self._flush(peer)
        if peer.outbox and peer.sock in self.settled:
            self.selector.modify(peer.sock, selectors.EVENT_WRITE, peer)

    def _flush(self, peer: Peer) -> None:
        try:
            sent = peer.sock.send(peer.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(peer)
            return
        peer.outbox = peer.outbox[sent:]
        if not peer.outbox:
            self._close(peer)

