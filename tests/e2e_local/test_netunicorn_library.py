"""Conformance: netunicorn-library tasks, unmodified, through `unicorn-ansible run` on the local
machine, compared with netunicorn's own executor (netunicorn-executor's local mode) where it can
run the same tasks. The HTTP and DNS servers they talk to are started by the test."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cloudpickle
import pytest
from netunicorn.base import Experiment as NExperiment
from netunicorn.base import Pipeline as NPipeline
from netunicorn.executor import get_local_executor as netunicorn_local_executor
from netunicorn.library.tasks.basic import DummyTask, ShellCommand, SleepTask
from netunicorn.library.tasks.data_transfer.send_data import SendData
from netunicorn.library.tasks.measurements.ping import PingLinuxImplementation
from netunicorn.library.tasks.upload.fileio import UploadToFileIO
from netunicorn.library.tasks.utils.network import PortKnock
from returns.pipeline import is_successful

from unicorn_ansible import Architecture, Node, get_local_executor

from .conftest import Env

EXPERIMENT = Path(__file__).with_name("netunicorn_library_experiment.py")


class _Analysis(BaseHTTPRequestHandler):
    """SendData posts results here and gets an id; FetchData asks for the analysis by that id."""

    def _reply(self, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self._reply({"result_id": "r1", "received": payload})

    def do_GET(self) -> None:  # noqa: N802
        self._reply({"analysis": "fine", "query": self.path})

    def log_message(self, *args: object) -> None:
        pass


def _dns_responder(sock: socket.socket, stop: threading.Event) -> None:
    """Answers every query with an empty NOERROR response (enough for dig, and a DNS packet to capture)."""
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, address = sock.recvfrom(512)
        except TimeoutError:
            continue
        reply = bytearray(data)
        reply[2] |= 0x80
        reply[3] = (reply[3] & 0xF0) | 0x80
        sock.sendto(bytes(reply), address)


@pytest.fixture(autouse=True)
def apt_waits_for_its_lock(env: Env) -> None:
    """The library's requirements run apt-get; other runs on this machine may hold dpkg's lock."""
    config = env.write("apt.conf", 'DPkg::Lock::Timeout "300";\n')
    env.vars["APT_CONFIG"] = str(config)


@pytest.fixture
def servers() -> Iterator[dict]:
    if os.geteuid() != 0:
        pytest.skip("the conformance run's DNS responder binds port 53, which needs root")
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Analysis)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))  # port 53: where scapy decodes DNS in a capture
    stop = threading.Event()
    responder = threading.Thread(target=_dns_responder, args=(dns, stop), daemon=True)
    responder.start()
    yield {"HTTP_PORT": str(http.server_address[1]), "DNS_PORT": "53", "IPERF_PORT": "15201"}
    http.shutdown()
    stop.set()
    responder.join()
    dns.close()


def test_library_tasks_run_unmodified_through_run(env: Env, servers: dict) -> None:
    captures = env.root / "captures"
    captures.mkdir()
    env.vars.update(servers, CONFORMANCE_DIR=str(captures))
    # the host's own tools (apt packages, its loopback): netunicorn's default DockerImage() as ShellExecution
    inventory = env.local_inventory(["localhost"], extra="unicorn_container_engine=none\nunicorn_container_fallback=shell")
    done = env.cli("run", str(EXPERIMENT), "-i", str(inventory), "--name", "library", "--json", check=0, timeout=900)
    node = json.loads(done.stdout)["nodes"][0]
    assert "as ShellExecution: the host has no container engine (unicorn_container_engine is none)" in node["notice"]
    tasks = {name: dict(results[-1], value=str(results[-1]["value"])) for name, results in node["tasks"].items()}
    assert all(r["type"] == "Success" for r in tasks.values()), tasks
    assert len(tasks) >= 20
    assert tasks["dummy"]["value"] == "True" and tasks["sleep"]["value"] == "1"
    assert "2 received" in next(r["value"] for r in tasks.values() if r["value"].startswith("PingResult"))
    assert "Got answer" in tasks["dig"]["value"]
    assert ast.literal_eval(tasks["send"]["value"]) == {"result_id": "r1", "received": {"sleep": [1]}}
    assert "result_id=r1" in tasks["fetch"]["value"]
    assert '"bits_per_second"' in tasks["iperf-client"]["value"]
    assert "conformance.test." in tasks["dns-queries"]["value"]  # tcpdump saw dig's query, scapy read it
    assert f"Host: 127.0.0.1:{servers['HTTP_PORT']}" in tasks["http-hosts"]["value"]
    assert servers["HTTP_PORT"] in tasks["5tuples"]["value"]
    assert "127.0.0.1" in tasks["tshark-read"]["value"]  # tshark's capture has the pings
    assert (captures / "tcpdump.pcap").stat().st_size > 0 and (captures / "tshark.pcap").stat().st_size > 0
    # the captures, declared with add_artifact, came home whole: a pcap with dig's query, a pcapng
    artifacts = {(a["task"], a["path"]): a for a in node["artifacts"]}
    assert set(artifacts) == {("tcpdump", "tcpdump.pcap"), ("tshark", "tshark.pcap")}, artifacts
    run_dir = env.home / "runs" / "library"
    tcpdump = (run_dir / artifacts[("tcpdump", "tcpdump.pcap")]["file"]).read_bytes()
    assert tcpdump == (captures / "tcpdump.pcap").read_bytes() and tcpdump[:4] == b"\xd4\xc3\xb2\xa1"
    assert b"conformance" in tcpdump  # dig's query for conformance.test
    tshark = (run_dir / artifacts[("tshark", "tshark.pcap")]["file"]).read_bytes()
    assert tshark == (captures / "tshark.pcap").read_bytes() and tshark[:4] == b"\x0a\x0d\x0d\x0a"


def _comparable(result: object) -> tuple:
    value = result.unwrap() if is_successful(result) else result.failure()
    if type(value).__name__ == "PingResult":
        value = (value.host, len(value.packets), value.packet_loss)
    return type(result).__name__, value


def test_same_results_as_netunicorns_own_executor(servers: dict, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # netunicorn's executor writes its log into the current folder
    http = f"http://127.0.0.1:{servers['HTTP_PORT']}/analysis"
    pipeline = (
        NPipeline(early_stopping=False)
        .then([DummyTask(name="dummy"), SleepTask(0, name="sleep")])
        .then([ShellCommand(["echo", "conformance"], name="echo"), ShellCommand(["false"], name="false"),
               PortKnock("127.0.0.1", int(servers["HTTP_PORT"]), name="knock"),
               PingLinuxImplementation("127.0.0.1", count=1, name="ping"),
               SendData([SendData.TaskDescriptor(name="sleep")], http, name="send")])
    )
    node = Node("localhost", {}, Architecture.LINUX_AMD64)
    dispatched = cloudpickle.loads(NExperiment().append(node, pipeline)[0].execution_graph)
    theirs = netunicorn_local_executor(dispatched)
    theirs()
    ours = get_local_executor(pipeline)
    ours()
    assert type(ours.execution_graph_results) is type(theirs.execution_graph_results)
    expected = {name: [_comparable(r) for r in results]
                for name, results in theirs.execution_graph_results.failure().items()}
    got = {name: [_comparable(r) for r in results] for name, results in ours.execution_graph_results.failure().items()}
    assert got == expected


def test_task_needing_the_internet_fails_clearly(env: Env) -> None:
    if os.geteuid() != 0:
        pytest.skip("the task's requirement is `sudo apt-get install -y curl`, which needs root here")
    upload = env.write("upload.py", (
        "from netunicorn.base import Experiment, Pipeline\n"
        "from netunicorn.library.tasks.upload.fileio import UploadToFileIO\n"
        "def experiment(nodes):\n"
        f"    return Experiment().map(Pipeline().then(UploadToFileIO({str(EXPERIMENT)!r}, name='upload')),"
        " nodes.take(1))\n"))
    assert UploadToFileIO  # the task of the file above
    inventory = env.local_inventory(["localhost"], extra="unicorn_container_engine=none\nunicorn_container_fallback=shell")
    done = env.cli("run", str(upload), "-i", str(inventory), "--name", "upload", "--json", check=1, timeout=600)
    result = json.loads(done.stdout)["nodes"][0]["tasks"]["upload"][0]
    assert result["type"] == "Failure" and "file.io" in str(result["value"]), result


def test_host_without_netunicorns_runtime_gets_an_error_naming_it(env: Env, tmp_path: Path) -> None:
    """netunicorn's flag tasks import requests (and carry a pydantic model): a host whose Python
    lacks them and cannot install them fails its deployment with a message naming the module."""
    if subprocess.run(["/usr/bin/python3", "-c", "import requests"], capture_output=True).returncode == 0:
        pytest.skip("/usr/bin/python3 has requests here")
    inventory = env.local_inventory(["bare ansible_python_interpreter=/usr/bin/python3"])
    env.write("flags.py", (
        "from netunicorn.base import Experiment, Pipeline, ShellExecution\n"
        "from netunicorn.library.tasks.flags import GetFlagTask\n"
        "environment = ShellExecution()\n"
        "environment.runtime_context.environment_variables.update(\n"
        f"    PIP_CONFIG_FILE='/dev/null', PIP_NO_INDEX='1', PIP_FIND_LINKS={str(tmp_path / 'none')!r})\n"
        "def experiment(nodes):\n"
        "    pipeline = Pipeline(environment_definition=environment).then(GetFlagTask('f', name='get'))\n"
        "    return Experiment().map(pipeline, nodes.take(1))\n"))
    done = env.cli("run", "flags.py", "-i", str(inventory), "--name", "bare", "--json", check=1, timeout=600)
    node = json.loads(done.stdout)["nodes"][0]
    assert node["status"] == "deploy_failed", node
    assert "imports pydantic (netunicorn's executor always has it)" in node["error"]
    assert "install pydantic into this host's Python" in node["error"]
