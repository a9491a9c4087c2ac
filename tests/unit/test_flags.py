"""The flag store: atomic operations, waits, tokens, values set before a run starts."""

from __future__ import annotations

import json
import threading
import time

import pytest

from unicorn_ansible import FlagError, FlagValues, decrement_flag, get_flag, increment_flag, set_flag, wait_for_flag
from unicorn_ansible.engine.flag_server import flag_request, new_endpoint, serve_flags, write_endpoint
from unicorn_ansible.engine.rundir import RunDir
from unicorn_ansible.model.flags import request


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A run folder with a live flag store; the environment a task on a local host gets."""
    endpoint = new_endpoint(tmp_path)
    write_endpoint(tmp_path, endpoint)
    monkeypatch.setenv("UNICORN_FLAGS", f"unix:{endpoint.socket}")
    monkeypatch.setenv("UNICORN_FLAGS_TOKEN", endpoint.token)
    with serve_flags(tmp_path):
        yield tmp_path


def test_set_get_and_unset(store):
    assert get_flag("ready") is None
    assert set_flag("ready", FlagValues(text_value="10.0.0.1", int_value=1)) == FlagValues("10.0.0.1", 1)
    assert get_flag("ready") == FlagValues("10.0.0.1", 1)
    assert json.loads(RunDir(store).flags_file.read_text())["ready"] == {"text_value": "10.0.0.1", "int_value": 1}


def test_concurrent_increments_and_decrements_are_atomic(store):
    def bump():
        for _ in range(25):
            increment_flag("count")

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert get_flag("count").int_value == 200
    assert decrement_flag("count", 50).int_value == 150


def test_wait_returns_when_another_party_sets_the_value(store):
    threading.Timer(0.3, lambda: set_flag("go", FlagValues(int_value=1))).start()
    started = time.monotonic()
    assert wait_for_flag("go", FlagValues(int_value=1), timeout=10) == FlagValues(None, 1)
    assert time.monotonic() - started < 5


def test_wait_times_out_with_a_clear_message(store):
    set_flag("go", FlagValues(int_value=2))
    with pytest.raises(TimeoutError, match=r"flag 'go' did not become .*int_value=1\) within 0.5 s \(it is "
                                           r"FlagValues\(text_value=None, int_value=2\)\)"):
        wait_for_flag("go", FlagValues(int_value=1), timeout=0.5)


def test_a_wrong_token_is_refused(store, monkeypatch):
    monkeypatch.setenv("UNICORN_FLAGS_TOKEN", "guessed")
    with pytest.raises(FlagError, match="does not match this task.s token"):
        get_flag("ready")


def test_bad_requests_get_an_answer_not_a_dead_store(store):
    for message in ({"op": "set", "name": "x", "value": {"int_value": "many"}}, {"op": "nope", "name": "x"},
                    {"op": "get", "name": ""}):
        with pytest.raises(FlagError):
            request(message)
    assert set_flag("x", FlagValues(int_value=3)).int_value == 3


def test_no_store_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("UNICORN_FLAGS", raising=False)
    with pytest.raises(FlagError, match="no flag store"):
        get_flag("ready")
    monkeypatch.setenv("UNICORN_FLAGS", "tcp:127.0.0.1:9")
    with pytest.raises(FlagError, match="cannot reach the run's flag store at 127.0.0.1:9"):
        get_flag("ready")


def test_values_set_before_the_run_executes_are_there_when_it_does(tmp_path):
    endpoint = new_endpoint(tmp_path)
    write_endpoint(tmp_path, endpoint)
    flag_request(tmp_path, {"op": "set", "name": "mode", "value": {"text_value": "fast"}})
    with serve_flags(tmp_path):
        answer = request({"op": "get", "name": "mode"}, f"unix:{endpoint.socket}", endpoint.token)
        assert answer["value"] == {"text_value": "fast", "int_value": 0}
        # and the client's view goes through the live store
        flag_request(tmp_path, {"op": "add", "name": "n", "by": 2})
        assert request({"op": "get", "name": "n"}, f"unix:{endpoint.socket}", endpoint.token)["value"][
            "int_value"] == 2


def test_a_tunnel_with_no_store_behind_it_is_a_clear_error() -> None:
    """A compiled run executed by hand with plain ansible-playbook: the reverse tunnel accepts the
    connection and resets it (no store serves the socket)."""
    import socket
    import struct
    import threading

    from unicorn_ansible.model.flags import FlagError, request

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def reset_once() -> None:
        peer, _ = server.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.recv(1)
        peer.close()

    thread = threading.Thread(target=reset_once)
    thread.start()
    try:
        with pytest.raises(FlagError, match="plain ansible-playbook has no flag store"):
            request({"op": "get", "name": "x"}, endpoint=f"tcp:127.0.0.1:{port}", token="t", timeout=10)
    finally:
        thread.join(10)
        server.close()


def test_the_endpoint_file_is_the_wires_record_and_a_changed_one_is_refused(tmp_path):
    """flags-endpoint.json is written and read as the wire's FlagsEndpoint (issue 22: writer,
    validator and reader one class): a port that is not one is refused, naming the file."""
    from unicorn_ansible.engine.flag_server import read_endpoint
    from unicorn_ansible.errors import RunError
    from unicorn_ansible.node.wire import FlagsEndpoint

    endpoint = new_endpoint(tmp_path, local=True)
    write_endpoint(tmp_path, endpoint)
    path = RunDir(tmp_path).flags_endpoint_file
    raw = json.loads(path.read_text())
    assert raw["version"] == 1 and FlagsEndpoint.from_untrusted(raw, "the file") == endpoint
    assert read_endpoint(tmp_path) == endpoint and (path.stat().st_mode & 0o777) == 0o600
    path.write_text(json.dumps({**raw, "port": "22 -o ProxyCommand=x"}))
    with pytest.raises(RunError, match=r"flags-endpoint\.json.*port.*prepare the run again"):
        read_endpoint(tmp_path)
