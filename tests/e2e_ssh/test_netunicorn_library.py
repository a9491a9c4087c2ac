"""Conformance over SSH: netunicorn-library tasks, unmodified, on testbed hosts that have only
Python and apt packages (no netunicorn): an iperf3 server on one host and its client on another,
ping, traceroute and a port knock between them, a tcpdump capture started and stopped by name
(previous_steps) and read back with tshark."""

from __future__ import annotations

from .conftest import Lab, node

EXPERIMENT = '''
from netunicorn.base import Experiment, Pipeline
from netunicorn.library.tasks.basic import DummyTask, ShellCommand, SleepTask
from netunicorn.library.tasks.capture.tcpdump import StartCapture, StopNamedCapture
from netunicorn.library.tasks.measurements.iperf3 import Iperf3Client, Iperf3ServerStart, Iperf3ServerStop
from netunicorn.library.tasks.measurements.ping import Ping
from netunicorn.library.tasks.preprocessing.tshark import TsharkCommand
from netunicorn.library.tasks.utils.network import PortKnock

SERVER, CLIENT = {server!r}, {client!r}
serve = (Pipeline()
         .then(Iperf3ServerStart(["-p", "15201"], name="iperf-server"))
         .then(SleepTask(12, name="serving"))
         .then(Iperf3ServerStop("iperf-server", name="iperf-stop")))
measure = (Pipeline()
           .then([DummyTask(name="dummy"), StartCapture("/root/conformance.pcap", ["-i", "any"], name="capture")])
           .then(SleepTask(2, name="wait-for-server"))
           .then([Ping(SERVER, count=3, name="ping"), PortKnock(SERVER, 22, name="knock"),
                  ShellCommand(["traceroute", "-n", "-w", "1", "-q", "1", SERVER], name="traceroute")])
           .then(Iperf3Client(["-c", SERVER, "-p", "15201", "-t", "2"], name="iperf-client"))
           .then(StopNamedCapture("capture", name="capture-stop"))
           .then(SleepTask(1, name="flush"))
           .then(TsharkCommand(["tshark", "-r", "/root/conformance.pcap", "-Y", "icmp.type == 8",
                                "-T", "fields", "-e", "ip.dst"], name="tshark-read")))


def experiment(nodes):
    by_name = {{n.name: n for n in nodes.take(10)}}
    return Experiment().append(by_name["{server_name}"], serve).append(by_name["{client_name}"], measure)
'''


def test_library_tasks_between_two_hosts(lab: Lab) -> None:
    server, client = lab.hosts[0], lab.hosts[1]
    # the hosts' apt packages: netunicorn's default DockerImage() runs as ShellExecution
    inventory = lab.inventory("netunicorn", hosts=[server.name, client.name],
                              group_vars={"unicorn_container_engine": "none",
                                          "unicorn_container_fallback": "shell"})
    (lab.root / "netunicorn_library.py").write_text(EXPERIMENT.format(
        server=server.address, client=client.address, server_name=server.name, client_name=client.name))
    lab.cli("run", "netunicorn_library.py", "-i", str(inventory), "--name", "library", check=0, timeout=600)
    results = lab.results("library")
    serving, measuring = node(results, server.name), node(results, client.name)
    assert serving["status"] == measuring["status"] == "ok", (serving, measuring)
    assert "as ShellExecution: the host has no container engine" in measuring["notice"]
    tasks = {name: str(values[-1]["value"]) for name, values in measuring["tasks"].items()}
    assert len(measuring["tasks"]) + len(serving["tasks"]) >= 11
    ping = next(value for value in tasks.values() if value.startswith("PingResult"))
    assert f"host='{server.address}'" in ping and "packet_loss=0.0" in ping
    assert tasks["knock"] == "0" and server.address in tasks["traceroute"]
    assert "receiver" in tasks["iperf-client"]
    assert tasks["tshark-read"].split().count(server.address) >= 3  # the capture holds the pings
    assert (lab.host_root(client.name) / "conformance.pcap").stat().st_size > 0
