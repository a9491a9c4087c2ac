"""The testbed's apt proxy: how hosts, which have no route off their bridge, reach the machine's apt sources.

Each host has a root of its own (an overlay of the machine's, see ``layers``), so ``apt-get install``
on a host installs on that host only; the packages it downloads come through this proxy, which
``testbed up`` starts on the bridge's address (its port is written into the hosts' apt
configuration). It forwards plain HTTP requests (``GET``/``HEAD``) and ``CONNECT`` tunnels to port
443 only for the hosts named in the machine's apt sources, and refuses anything else with 403: the
testbed's hosts get apt's registries, not the network.

Run as ``python -I aptproxy.py --fd N --allow host[,host...] --state DIR`` with the listening
socket already bound (so hosts never race its start-up); the standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import re
import selectors
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

# the headers that describe one connection, not the message: never passed on (RFC 9110, 7.6.1)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade"})
CHUNK = 64 * 1024
TIMEOUT = 120.0
_URI = re.compile(r"^\s*(?:URIs:\s*(?P<uris>.+)|deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(?P<uri>\S+))", re.IGNORECASE)


def source_hosts(apt_etc: Path = Path("/etc/apt")) -> list[str]:
    """The host names of the machine's apt sources (one-line ``.list`` and deb822 ``.sources`` files):
    what the proxy lets hosts reach. ``file:``, ``cdrom:`` and ``mirror+`` sources name none."""
    files = [apt_etc / "sources.list", *sorted((apt_etc / "sources.list.d").glob("*.list")),
             *sorted((apt_etc / "sources.list.d").glob("*.sources"))]
    hosts: set[str] = set()
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            found = _URI.match(line.split("#", 1)[0])
            if not found:
                continue
            for uri in (found["uris"] or found["uri"] or "").split():
                parts = urlsplit(uri)
                if parts.scheme in ("http", "https") and parts.hostname:
                    hosts.add(parts.hostname.lower())
    return sorted(hosts)


class AptProxy(BaseHTTPRequestHandler):
    """One client connection: requests for the allowed hosts forwarded, anything else refused."""

    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT
    allowed: frozenset[str] = frozenset()

    def do_GET(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        if not self._allows(host):
            return
        if port != "443":
            self.send_error(403, "the testbed's apt proxy opens tunnels to port 443 only")
            return
        try:
            upstream = socket.create_connection((host, 443), timeout=TIMEOUT)
        except OSError as error:
            self.send_error(502, f"cannot reach {host}:443: {error}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        with upstream:
            _relay(self.connection, upstream)

    def _allows(self, host: str | None) -> bool:
        if host and host.lower().strip("[]") in self.allowed:
            return True
        self.send_error(403, f"the testbed's apt proxy reaches only the machine's apt sources "
                             f"({', '.join(sorted(self.allowed)) or 'none'})")
        return False

    def _forward(self) -> None:
        target = urlsplit(self.path)
        if target.scheme != "http" or not self._allows(target.hostname):
            return
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=TIMEOUT)
        try:
            upstream.request(self.command, (target.path or "/") + (f"?{target.query}" if target.query else ""),
                             headers=headers)
            answer = upstream.getresponse()
        except OSError as error:
            upstream.close()
            self.send_error(502, f"cannot reach {target.hostname}: {error}")
            return
        try:
            self._answer(answer)
        finally:
            upstream.close()

    def _answer(self, answer: http.client.HTTPResponse) -> None:
        """The upstream's answer to the client: its length kept (the connection stays open) or,
        where it had none, the body until the end and the connection closed after it."""
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if answer.getheader("Content-Length") is None and self.command != "HEAD" and answer.status not in (204, 304):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        while chunk := answer.read(CHUNK):
            self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def _relay(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until either side closes (a CONNECT tunnel)."""
    with selectors.DefaultSelector() as selector:
        selector.register(one, selectors.EVENT_READ, other)
        selector.register(other, selectors.EVENT_READ, one)
        while True:
            events = selector.select(TIMEOUT)
            if not events:
                return
            for key, _ in events:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(CHUNK)
                if not data:
                    return
                key.data.sendall(data)


def serve(listening: socket.socket, allowed: list[str]) -> None:
    """Answer hosts on ``listening`` (bound and listening already) until killed."""
    handler = type("Proxy", (AptProxy,), {"allowed": frozenset(allowed)})
    server = ThreadingHTTPServer(listening.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listening
    server.daemon_threads = True
    server.serve_forever()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the listening socket's descriptor")
    parser.add_argument("--allow", default="", help="host names to forward to, comma-separated")
    parser.add_argument("--state", required=True, help="the testbed's state folder (names the proxy's owner)")
    arguments = parser.parse_args(argv)
    serve(socket.socket(fileno=arguments.fd), [host for host in arguments.allow.split(",") if host])


if __name__ == "__main__":
    main(sys.argv[1:])
