"""Execution graphs, previous steps and cross-node flags over real SSH (issue: execution graphs and flags).

Flags reach testbed hosts only through the reverse tunnel on Ansible's own SSH connection:
the hosts are network namespaces with no route to the controller's flag socket."""

from __future__ import annotations

import json
import subprocess
import time

from .conftest import CLI, Lab, node

FLAGS = '''
import socket
import time

from unicorn_ansible import (AtomicIncrementFlagTask, Experiment, FlagValues, Pipeline, Task, TaskDispatcher,
                             WaitForExactFlagResultTask, set_flag)

PORT = 5301


class ServeOnce(Task):
    """A small TCP sink: says it is up with a flag, counts what one client sends."""

    def __init__(self, address):
        self.address = address
        super().__init__(name="serve")

    def run(self):
        with socket.create_server((self.address, PORT)) as server:
            server.settimeout(120)
            set_flag("server-up", FlagValues(text_value=self.address, int_value=1))
            peer, _ = server.accept()
            received = 0
            with peer:
                while chunk := peer.recv(1 << 16):
                    received += len(chunk)
        return {"received": received}


class Send(Task):
    def __init__(self, address, size):
        self.address = address
        self.size = size
        super().__init__(name="throughput")

    def run(self):
        block = b"x" * (1 << 16)
        start = time.monotonic()
        with socket.create_connection((self.address, PORT), timeout=30) as sock:
            sent = 0
            while sent < self.size:
                sock.sendall(block)
                sent += len(block)
        seconds = time.monotonic() - start
        return {"sent": sent, "mbit_s": sent * 8 / seconds / 1e6}


class WaitForServer(TaskDispatcher):
    def dispatch(self, node):
        return WaitForExactFlagResultTask("server-up", FlagValues(text_value=node["peer"], int_value=1),
                                          timeout=120, name="wait-for-server")


class SendToServer(TaskDispatcher):
    def dispatch(self, node):
        return Send(node["peer"], 16 * (1 << 20))


def experiment(nodes):
    server, client = nodes.take(2)
    serving = Pipeline([ServeOnce(server["unicorn_address"]),
                        WaitForExactFlagResultTask("go", FlagValues(int_value=1), timeout=120, name="wait-for-go"),
                        AtomicIncrementFlagTask("finished", name="count-server")])
    measuring = Pipeline([WaitForServer(), SendToServer(), AtomicIncrementFlagTask("finished", name="count-client"),
                          WaitForExactFlagResultTask("never-set", FlagValues(int_value=1), timeout=2,
                                                     name="wait-times-out")])
    return Experiment().append(server, serving).append(client, measuring)
'''


def _flags(lab: Lab, run: str, created: bool = True) -> dict:
    done = lab.cli("flags", run, "--json")
    if not created and "no run named" in done.stderr:
        return {}
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_client_waits_for_the_servers_flag_and_measures_throughput(lab: Lab) -> None:
    server, client = lab.hosts[0], lab.hosts[1]
    inventory = lab.inventory("flags", hosts=[server.name, client.name],
                              host_vars={client.name: {"peer": server.address}})
    (lab.root / "flags.py").write_text(FLAGS)
    run = subprocess.Popen(CLI + ["run", "flags.py", "-i", str(inventory), "--name", "flags"], env=lab.vars,
                           cwd=lab.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the flags are readable from the CLI while the run executes
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and _flags(lab, "flags", False).get("finished", {}).get("int_value") != 1:
            assert run.poll() is None, run.communicate()
            time.sleep(0.5)
        seen = _flags(lab, "flags")
        assert seen["server-up"] == {"text_value": server.address, "int_value": 1}
        assert seen["finished"]["int_value"] == 1  # the client counted itself; the server waits for "go"
        # ... and settable: the server's pipeline goes on when the user sets "go"
        lab.cli("flags", "flags", "go", "--int", "1", check=0)
        out, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, err  # the client's last task times out on purpose
    results = lab.results("flags")
    serving, measuring = node(results, server.name), node(results, client.name)
    assert serving["status"] == "ok", serving
    assert [r["type"] for r in serving["results"]] == ["Success"] * 3
    assert serving["tasks"]["count-server"][0]["value"] == "FlagValues(text_value=None, int_value=2)"
    throughput = measuring["tasks"]["throughput"][0]["value"]
    assert throughput["sent"] == serving["tasks"]["serve"][0]["value"]["received"] == 16 * (1 << 20)
    assert throughput["mbit_s"] > 1
    timed_out = measuring["tasks"]["wait-times-out"][0]
    assert timed_out["type"] == "Failure"
    assert "flag 'never-set' did not become FlagValues(text_value=None, int_value=1) within 2 s" in timed_out["value"]
    assert measuring["status"] == "failed"
    assert _flags(lab, "flags")["finished"]["int_value"] == 2  # kept in the run folder after the run


GRAPHS = '''
import os
import signal
import subprocess
import sys
import time

from unicorn_ansible import CyclePipeline, ExecutionGraph, Experiment, Pipeline, Task


class Count(Task):
    def run(self):
        return {name: len(results) for name, results in self.previous_steps.items()}


class Probe(Task):
    def run(self):
        raise RuntimeError("the link is down")


class StartCapture(Task):
    def run(self):
        path = "/tmp/capture-%d.txt" % os.getpid()
        code = "import time\\nwhile True:\\n    print(time.time(), flush=True)\\n    time.sleep(0.02)"
        process = subprocess.Popen([sys.executable, "-c", code], stdout=open(path, "w"),
                                   stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        return {"pid": process.pid, "path": path}


class Measure(Task):
    def run(self):
        time.sleep(0.3)
        return "measured"


class StopCapture(Task):
    def __init__(self, capture_name):
        self.capture_name = capture_name
        super().__init__(name="stop-capture")

    def run(self):
        capture = self.previous_steps[self.capture_name][-1].unwrap()
        os.kill(capture["pid"], signal.SIGTERM)
        time.sleep(0.1)
        with open(capture["path"]) as handle:
            lines = len(handle.readlines())
        alive = os.path.exists("/proc/%d" % capture["pid"]) and \\
            open("/proc/%d/stat" % capture["pid"]).read().split()[2] != "Z"
        return {"stopped": capture["pid"], "alive": alive, "lines": lines}


def experiment(nodes):
    looped, recovering, capturing = nodes.take(3)

    loop = ExecutionGraph()
    first, second = Count(name="first"), Count(name="second")
    loop.graph.add_edge("root", first)
    loop.graph.add_edge(first, second)
    loop.graph.add_edge(second, first, type="weak", counter=2)

    recovery = ExecutionGraph()
    probe, recover, report = Probe(name="probe"), Count(name="recover"), Count(name="report")
    recovery.graph.add_edge("root", probe)
    recovery.graph.add_edge(probe, recover, traverse_on="failure")
    recovery.graph.add_edge(probe, report)

    capture = CyclePipeline(cycles=2, tasks=[StartCapture(name="capture"), Measure(name="measure"),
                                             StopCapture("capture")])
    return (Experiment().append(looped, loop).append(recovering, recovery)
            .append(capturing, capture))
'''


def test_graphs_loop_recover_and_stop_a_capture_by_name(lab: Lab) -> None:
    inventory = lab.inventory("graphs")
    (lab.root / "graphs.py").write_text(GRAPHS)
    lab.cli("run", "graphs.py", "-i", str(inventory), "--name", "graphs", check=1)  # the probe fails on purpose
    results = lab.results("graphs")
    looped, recovering, capturing = (node(results, h.name) for h in lab.hosts[:3])

    # a weak back-edge with counter=2: the loop body runs 1 + 2 times; results keep netunicorn's graph shape
    assert looped["status"] == "ok", looped
    assert {name: len(runs) for name, runs in looped["results"].items()} == {"first": 3, "second": 3}
    assert looped["results"]["second"][-1]["value"] == {"first": 3, "second": 2}

    # traverse_on="failure" runs the recovery task; the default ("success") edge is not followed
    assert list(recovering["results"]) == ["probe", "recover"]
    assert recovering["results"]["probe"][0]["type"] == "Failure"
    assert recovering["results"]["recover"][0]["value"] == {"probe": 1}
    assert recovering["status"] == "failed" and recovering["not_run"] == []

    # start a capture, measure, stop the capture named "capture": twice (a CyclePipeline of 2 cycles)
    assert capturing["status"] == "ok", capturing
    stops = [r["value"] for r in capturing["results"]["stop-capture"]]
    starts = [r["value"] for r in capturing["results"]["capture"]]
    assert [s["stopped"] for s in stops] == [s["pid"] for s in starts]
    assert all(not s["alive"] and s["lines"] >= 10 for s in stops), stops
