"""The flag store under attack: impostors, token holders sending bad fields, slow and flooding clients,
squatted socket folders; and netunicorn-library's flag tasks speaking HTTP to the same store.

Every attacking loop is bounded by a deadline and stops by itself."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from unicorn_ansible import FlagError, FlagValues, get_flag, set_flag
from unicorn_ansible.engine import flag_loop
from unicorn_ansible.engine.flag_server import FlagReach, new_endpoint, serve_flags, task_settings, write_endpoint
from unicorn_ansible.engine.rundir import RunDir
from unicorn_ansible.errors import RunError
from unicorn_ansible.model.flags import HELLO, _greet, mac, request


def _run_dir(path: Path, local: bool = False) -> dict:
    endpoint = new_endpoint(path, local=local)
    write_endpoint(path, endpoint)
    return endpoint


@pytest.fixture()
def live(tmp_path, monkeypatch):
    """A live store and the environment a task on a local host gets (ours and netunicorn's variables)."""
    endpoint = _run_dir(tmp_path, local=True)
    settings = task_settings(endpoint, FlagReach.SOCKET, "executor-1")
    for name, value in {**settings["environment"], "UNICORN_FLAGS": settings["endpoint"],
                        "UNICORN_FLAGS_TOKEN": settings["token"]}.items():
        monkeypatch.setenv(name, value)
    with serve_flags(tmp_path):
        yield tmp_path, endpoint


def _raw(endpoint: dict, body: bytes) -> dict:
    """Send ``body`` as an authenticated request, as a token holder who crafts requests by hand would."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(endpoint.socket)
        nonces = _greet(sock, endpoint.token)
        sock.sendall(mac(endpoint.token, "request", *nonces, body) + b" " + body + b"\n")
        data = b""
        while not data.endswith(b"\n") and (chunk := sock.recv(65536)):
            data += chunk
    signature, _, answer = data.strip().partition(b" ")
    assert signature == mac(endpoint.token, "answer", *nonces, answer)
    return json.loads(answer)


# -- a token holder sends bad fields ------------------------------------------------------------

BAD_REQUESTS = {
    b'{"op": "wait", "name": "go", "value": {"int_value": 1}, "timeout": NaN}': "NaN is not a number",
    b'{"op": "wait", "name": "go", "value": {"int_value": 1}, "timeout": 1e999}': "not a finite number",
    b'{"op": "wait", "name": "go", "value": {"int_value": 1}, "timeout": -Infinity}': "-Infinity is not a number",
    b'{"op": "wait", "name": "go", "value": {"int_value": 1}, "timeout": 1e12}': "'timeout' must be",
    b'{"op": "set", "name": "x", "value": {"int_value": ' + b"9" * 4299 + b"}}": "64-bit",
    b'{"op": "set", "name": "x", "value": {"int_value": 9223372036854775808}}': "64-bit",
    b'{"op": "add", "name": "x", "by": 9223372036854775807}': "64-bit range",
    b'{"op": "set", "name": "x", "value": {"text_value": "' + b"a" * 9000 + b'"}}': "at most 8192 characters",
    b'{"op": "set", "name": "' + b"n" * 300 + b'", "value": {}}': "1 to 200 characters",
    b'{"op": "set", "name": "x", "value": ' + b"[" * 30000 + b"]" * 30000 + b"}": "deeper than 8 levels",
    b'[' * 200 + b']' * 200: "deeper than 8 levels",
    b'{"op": "set", "name": "x", "value": {"int_value": true}}': "64-bit integer",
    b'{"op": "get", "name": "x"': "a request is not JSON",
    b'"get"': "a request is a JSON object",
    b'{"op": "drop", "name": "x"}': "unknown operation",
    b'\xff\xfe': "UTF-8",
    b" " * 70000: "at most 65536 bytes",
}


@pytest.mark.parametrize("body", [b"[" * 9 + b"]" * 9, b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}",
                                  b'{"op": "get"', b"\xff", b'"\\ud800" [', b"[" * 5000])
def test_the_store_reads_requests_with_the_wires_one_parser(body):
    """The flag store's requests are read by the wire's bounded parser (issue 22: one parser),
    its refusals the wire's own words, at the store's depth."""
    from unicorn_ansible.engine.flag_store import MAX_DEPTH, parse_json
    from unicorn_ansible.node import wire

    with pytest.raises(wire.WireError) as refused:
        wire.parse_json(body, "a request", len(body), depth=MAX_DEPTH)
    with pytest.raises(FlagError) as answered:
        parse_json(body)
    assert str(answered.value) == str(refused.value)


def test_bad_fields_get_one_clear_error_and_change_nothing(live, capfd):
    run_dir, endpoint = live
    set_flag("x", FlagValues("kept", 9223372036854775000))
    before = (run_dir / "flags.json").read_text()
    for body, error in BAD_REQUESTS.items():
        answer = _raw(endpoint, body)
        assert answer["ok"] is False and error in answer["error"], (body[:80], answer)
    assert (run_dir / "flags.json").read_text() == before
    assert get_flag("x") == FlagValues("kept", 9223372036854775000)
    assert set_flag("y", FlagValues(int_value=-(2 ** 63))).int_value == -(2 ** 63)  # the store still works
    assert capfd.readouterr().err == ""  # no traceback in the run's terminal


def test_a_nan_wait_does_not_spin(live):
    _, endpoint = live
    started = time.process_time()
    _raw(endpoint, b'{"op": "wait", "name": "go", "value": {"int_value": 1}, "timeout": NaN}')
    time.sleep(1)
    assert time.process_time() - started < 0.5


# -- an impostor on the port ---------------------------------------------------------------------

def _impostor(behaviour) -> tuple[int, list[bytes], threading.Thread]:
    """A listener on a loopback port, as another user who bound the host's port first."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    heard: list[bytes] = []

    def serve() -> None:
        with server:
            peer, _ = server.accept()
            with peer:
                peer.settimeout(5)
                behaviour(peer, heard)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server.getsockname()[1], heard, thread


def _listen_and_forge(peer: socket.socket, heard: list[bytes]) -> None:
    heard.append(peer.recv(65536))
    peer.sendall(b"0" * 32 + b" " + b"f" * 64 + b"\n")
    try:
        while data := peer.recv(65536):
            heard.append(data)
    except OSError:
        pass


def test_an_impostor_learns_nothing_and_cannot_forge(live):
    _, endpoint = live
    port, heard, thread = _impostor(_listen_and_forge)
    with pytest.raises(FlagError, match="proof does not match"):
        request({"op": "set", "name": "server-up", "value": {"text_value": "10.0.0.7", "int_value": 1}},
                f"tcp:127.0.0.1:{port}", endpoint.token, timeout=5)
    thread.join(10)
    said = b"".join(heard)
    assert said.startswith(HELLO) and len(said) == len(HELLO) + 33  # a random nonce, nothing else
    assert endpoint.token.encode() not in said and b"10.0.0.7" not in said


def test_a_relaying_impostor_cannot_change_the_answer(live):
    _, endpoint = live
    set_flag("server-up", FlagValues("10.0.0.1", 1))

    def relay(peer: socket.socket, heard: list[bytes]) -> None:
        with socket.socket(socket.AF_UNIX) as store:
            store.connect(endpoint.socket)
            store.sendall(peer.recv(65536))
            peer.sendall(store.recv(65536))
            store.sendall(peer.recv(65536))
            signature, _, answer = store.recv(65536).partition(b" ")
            forged = answer.replace(b"10.0.0.1", b"6.6.6.6")
            peer.sendall(signature + b" " + forged)

    port, _, thread = _impostor(relay)
    with pytest.raises(FlagError, match="not authenticated"):
        request({"op": "get", "name": "server-up"}, f"tcp:127.0.0.1:{port}", endpoint.token, timeout=5)
    thread.join(10)


# -- slow, oversized and flooding clients ---------------------------------------------------------

def _timed(operation) -> float:
    started = time.monotonic()
    operation()
    return time.monotonic() - started


def test_slow_and_oversized_clients_are_dropped_and_others_served(live, monkeypatch):
    _, endpoint = live
    monkeypatch.setattr(flag_loop, "REQUEST_SECONDS", 1.0)  # read at each connection
    hostile = []
    for number in range(300):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(endpoint.socket)
        sock.sendall([HELLO[:5], HELLO + b"0" * 32 + b"\n" + b"x" * 60000, b"POST /api HTTP/1.1\r\n"][number % 3])
        hostile.append(sock)
    try:
        latencies = [_timed(lambda i=i: set_flag("n", FlagValues(int_value=i))) for i in range(20)]
        assert max(latencies) < 0.5, latencies
        time.sleep(1.5)  # every hostile peer is past its deadline: each has been dropped
        assert all(_closed_by_store(sock) for sock in hostile)
    finally:
        for sock in hostile:
            sock.close()
    assert get_flag("n").int_value == 19


def _closed_by_store(sock: socket.socket) -> bool:
    sock.settimeout(2)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


FLOOD_STORE = """
import json, resource, sys, time
from pathlib import Path
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from unicorn_ansible.engine.flag_server import serve_flags
with serve_flags(Path(sys.argv[1])):
    print("ready", flush=True)
    sys.stdin.read()
"""


def _flood(path: str, until: float, opened: list[int]) -> None:
    """Keep 2,000 connections open that each send half a hello, or a whole one, and stall; reopen each one
    dropped."""
    socks: list[socket.socket] = []
    while time.monotonic() < until:
        while len(socks) < 2000 and time.monotonic() < until:
            sock = socket.socket(socket.AF_UNIX)
            sock.setblocking(False)
            try:
                sock.connect(path)
                sock.send(HELLO[:8] if opened[0] % 2 else HELLO + b"%032x\n" % opened[0])
            except OSError:
                sock.close()
                break
            socks.append(sock)
            opened[0] += 1
        alive = []
        for sock in socks:
            try:
                gone = sock.recv(4096) in (b"", b"busy\n")
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                sock.close()
            else:
                alive.append(sock)
        socks = alive
        time.sleep(0.01)
    for sock in socks:
        sock.close()


def test_2000_hostile_connections_under_ulimit_1024(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4200:
        pytest.skip("the attacker needs 4,200 open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4200), hard))
    endpoint = _run_dir(tmp_path)
    store = subprocess.Popen([sys.executable, "-c", FLOOD_STORE, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert store.stdout.readline() == b"ready\n"
        cpu_before = _cpu_seconds(store.pid)
        opened = [0]
        attacker = threading.Thread(target=_flood, args=(endpoint.socket, time.monotonic() + 8, opened))
        attacker.start()
        time.sleep(2)  # the flood is at full strength
        latencies = []
        address = f"unix:{endpoint.socket}"
        for number in range(30):
            message = {"op": "set", "name": "n", "value": {"int_value": number}}
            latencies.append(_timed(lambda m=message: request(m, address, endpoint.token, timeout=5)))
            time.sleep(0.1)
        attacker.join(20)
        assert opened[0] >= 2000
        assert sorted(latencies)[len(latencies) // 2] < 0.25 and max(latencies) < 1.0, latencies
        assert len(os.listdir(f"/proc/{store.pid}/fd")) < 1024
        assert (_cpu_seconds(store.pid) - cpu_before) < 9 * 0.9  # it did not pin a core
    finally:
        _, err = store.communicate(b"", timeout=20)
    assert store.returncode == 0 and err == b"", err
    assert json.loads((tmp_path / "flags.json").read_text())["n"]["int_value"] == 29


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the socket's folder ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,owner", [(0o777, None), (0o700, 65534)], ids=["world-writable", "another-user"])
def test_a_squatted_socket_folder_is_refused_in_one_line(tmp_path, mode, owner):
    endpoint = _run_dir(tmp_path)
    folder = Path(endpoint.socket).parent
    folder.mkdir()
    os.chmod(folder, mode)
    if owner is not None:
        if os.getuid() != 0:
            pytest.skip("making a folder another user's needs root")
        os.chown(folder, owner, owner)
    try:
        with pytest.raises(RunError, match=r"refusing the flag socket folder .* it must be a folder only you") as err:
            with serve_flags(tmp_path):
                pass
        assert "\n" not in str(err.value)
        assert list(folder.iterdir()) == []  # nothing of ours went into it
    finally:
        folder.rmdir()


def test_stale_sockets_of_dead_runs_are_removed(tmp_path):
    (tmp_path / "dead").mkdir()
    dead = _run_dir(tmp_path / "dead")
    folder = Path(dead.socket).parent
    folder.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(dead.socket)  # bound, never served: what a killed controller leaves
    (tmp_path / "live").mkdir()
    _run_dir(tmp_path / "live")
    with serve_flags(tmp_path / "live"):
        assert not folder.exists()
    assert not Path(json.loads(RunDir(tmp_path / "live").flags_endpoint_file.read_text())["socket"]).parent.exists()


# -- netunicorn's HTTP protocol -----------------------------------------------------------------------------

def test_netunicorn_library_flag_tasks_share_the_store(live):
    pytest.importorskip("requests")
    flags = pytest.importorskip("netunicorn.library.tasks.flags")
    from netunicorn.base.types import FlagValues as NetunicornFlagValues
    from requests import HTTPError

    with pytest.raises(HTTPError, match="404"):
        flags.GetFlagTask("ready").run()  # unset: 404, as netunicorn's gateway answers
    flags.SetFlagTask("ready", NetunicornFlagValues(text_value="10.0.0.1", int_value=1)).run()
    assert get_flag("ready") == FlagValues("10.0.0.1", 1)
    flags.AtomicIncrementFlagTask("ready").run()
    flags.AtomicDecrementFlagTask("count").run()
    assert get_flag("count") == FlagValues(None, -1)
    set_flag("go", FlagValues(int_value=1))
    assert flags.GetFlagTask("ready").run() == NetunicornFlagValues(text_value="10.0.0.1", int_value=2)
    assert flags.WaitForExactFlagResultTask("go", NetunicornFlagValues(int_value=1), attempts=2).run() == {
        "text_value": None, "int_value": 1}
    with pytest.raises(TimeoutError):
        flags.WaitForExactFlagResultTask("never", NetunicornFlagValues(int_value=1), sleep_time=0.01,
                                         attempts=3).run()


def test_http_answers_as_netunicorns_gateway_and_refuses_other_experiments(live):
    requests = pytest.importorskip("requests")
    _, endpoint = live
    base = f"{os.environ['NETUNICORN_GATEWAY_ENDPOINT']}/api/v1/experiment"
    flag = f"{base}/{endpoint.experiment_id}/flag"
    assert requests.post(f"{flag}/a", json={"text_value": None, "int_value": None}).status_code == 400
    assert requests.post(f"{flag}/a", data=b'{"int_value": NaN}').status_code == 422
    assert requests.post(f"{flag}/a", data=b'{"int_value": 99999999999999999999}').status_code == 422
    assert requests.post(f"{flag}/a", data=b"[" * 5000).status_code == 422
    with socket.create_connection(("127.0.0.1", endpoint.local_port)) as sock:
        sock.sendall(b"POST /api/v1/experiment/x/flag/a HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 413 ")
    assert requests.put(f"{flag}/a", json={"int_value": 1}).status_code == 405
    assert requests.get(f"{flag}/a").status_code == 404
    assert requests.post(f"{flag}/a", json={"int_value": 5}).json() is None
    assert requests.get(f"{flag}/a").json() == {"text_value": None, "int_value": 5}
    wrong = f"{base}/{'0' * 32}/flag/a"
    assert requests.get(wrong).status_code == 404
    assert requests.post(wrong, json={"int_value": 6}).status_code == 404
    assert requests.get(f"{flag}/a").json()["int_value"] == 5
    assert requests.get(f"{os.environ['NETUNICORN_GATEWAY_ENDPOINT']}/").status_code == 404


def test_tasks_get_netunicorns_variables(tmp_path):
    endpoint = new_endpoint(tmp_path, local=True)
    remote = task_settings(endpoint, FlagReach.TUNNEL, "run-1-h1")
    assert remote["endpoint"] == f"tcp:127.0.0.1:{endpoint.port}"
    assert remote["environment"] == {"NETUNICORN_GATEWAY_ENDPOINT": f"http://127.0.0.1:{endpoint.port}",
                                     "NETUNICORN_EXPERIMENT_ID": endpoint.experiment_id,
                                     "NETUNICORN_EXECUTOR_ID": "run-1-h1"}
    local = task_settings(endpoint, FlagReach.SOCKET, "run-1-local")
    assert local["environment"]["NETUNICORN_GATEWAY_ENDPOINT"] == f"http://127.0.0.1:{endpoint.local_port}"
    assert local["endpoint"] == f"unix:{endpoint.socket}"


def test_a_text_too_long_is_refused_before_it_is_sent(live):
    with pytest.raises(FlagError, match="at most 8192 characters"):
        set_flag("x", FlagValues("é" * 20000))
    with pytest.raises(FlagError, match="at most 8192 characters"):
        set_flag("x", FlagValues("a" * 9000))
    assert get_flag("x") is None
