"""The flag store over real SSH: netunicorn-library's flag tasks (HTTP) and ours (the token's protocol)
coordinate through the same tunnel; a host where another user holds the tunnel's port fails clearly
while the other nodes run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unicorn_ansible import Client
from unicorn_ansible.engine import flag_server

from .conftest import Lab, node

PACKAGES = ["netunicorn-base==0.4.1", "netunicorn-library==0.4.15", "requests"]

NETUNICORN_FLAGS = '''
from netunicorn.base.types import FlagValues as NetunicornFlagValues
from netunicorn.library.tasks.flags import AtomicIncrementFlagTask as NetunicornIncrement
from netunicorn.library.tasks.flags import SetFlagTask, WaitForExactFlagResultTask as NetunicornWait

from unicorn_ansible import AtomicIncrementFlagTask, Experiment, FlagValues, Pipeline, WaitForExactFlagResultTask

# the testbed's hosts have no network: netunicorn and requests come from a folder of wheels
INSTALL = "pip install --no-index --find-links {wheels} {packages}"


def experiment(nodes):
    announcing, waiting = nodes.take(2)
    announce = SetFlagTask("server-up", NetunicornFlagValues(text_value="10.0.0.7", int_value=1), name="nu-set")
    announce.add_requirement(INSTALL)
    netunicorn_side = Pipeline([announce,
                                NetunicornWait("client-done", NetunicornFlagValues(int_value=1), sleep_time=0.2,
                                               attempts=600, name="nu-wait"),
                                NetunicornIncrement("finished", name="nu-count")])
    our_side = Pipeline([WaitForExactFlagResultTask("server-up", FlagValues("10.0.0.7", 1), timeout=120,
                                                    name="ours-wait"),
                         AtomicIncrementFlagTask("client-done", name="ours-count")])
    return Experiment().append(announcing, netunicorn_side).append(waiting, our_side)
'''


@pytest.fixture(scope="module")
def wheels(lab: Lab) -> Path:
    folder = lab.root / "wheels"
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(folder),
                           *PACKAGES], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"cannot get netunicorn's wheels for the testbed: {done.stderr.strip()[-300:]}")
    return folder


def test_a_netunicorn_library_flag_task_and_ours_coordinate(lab: Lab, wheels: Path) -> None:
    announcing, waiting = lab.hosts[0], lab.hosts[1]
    shutil.copytree(wheels, lab.host_root(announcing.name) / "wheels", dirs_exist_ok=True)  # the host's /root
    inventory = lab.inventory("netunicorn-flags", hosts=[announcing.name, waiting.name])
    (lab.root / "nu_flags.py").write_text(NETUNICORN_FLAGS.format(wheels="/root/wheels", packages=" ".join(PACKAGES)))
    lab.cli("run", "nu_flags.py", "-i", str(inventory), "--name", "nu-flags", check=0, timeout=600)
    results = lab.results("nu-flags")
    netunicorn_side, our_side = node(results, announcing.name), node(results, waiting.name)
    assert netunicorn_side["status"] == our_side["status"] == "ok", results
    assert our_side["tasks"]["ours-wait"][0]["value"] == "FlagValues(text_value='10.0.0.7', int_value=1)"
    flags = json.loads(lab.cli("flags", "nu-flags", "--json", check=0).stdout)
    assert flags == {"server-up": {"text_value": "10.0.0.7", "int_value": 1},
                     "client-done": {"text_value": None, "int_value": 1},
                     "finished": {"text_value": None, "int_value": 1}}


EVERYWHERE = '''
from unicorn_ansible import Experiment, FlagValues, Pipeline, SetFlagTask

def experiment(nodes):
    experiment = Experiment()
    for number, host in enumerate(nodes.take(3)):
        experiment.append(host, Pipeline([SetFlagTask(f"up-{number}", FlagValues(int_value=1), name="announce")]))
    return experiment
'''

HOLD_PORT = """
import socket, sys, time
with socket.create_server(("127.0.0.1", int(sys.argv[1]))) as server:
    print("bound", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_a_port(netns: str) -> tuple[int, subprocess.Popen]:
    """Another user on a host binds a port before the run connects: the one the run will choose."""
    for port in range(31000, 31100):
        holder = subprocess.Popen(["ip", "netns", "exec", netns, "setpriv", "--reuid=65534", "--regid=65534",
                                   "--clear-groups", sys.executable, "-c", HOLD_PORT, str(port), "300"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if holder.stdout.readline() == "bound\n":
            return port, holder
        holder.wait()
    raise AssertionError("no free port to hold")


def test_a_prebound_tunnel_port_fails_that_host_clearly_and_the_others_run(lab: Lab, monkeypatch) -> None:
    squatted = lab.hosts[0]
    port, holder = _hold_a_port(squatted.netns)
    monkeypatch.setattr(flag_server, "_random_port", lambda: port)
    namespace: dict = {}
    exec(compile(EVERYWHERE, "everywhere.py", "exec"), namespace)
    client = Client(str(lab.inventory("prebound")))
    try:
        client.run(namespace["experiment"](client.get_nodes()), "prebound")
    finally:
        holder.kill()
        holder.wait()
    results = lab.results("prebound")
    failed = node(results, squatted.name)
    assert failed["status"] == "unreachable", failed
    assert f"port forwarding failed for listen port {port}" in failed["error"], failed["error"]
    assert f"127.0.0.1:{port}" in failed["error"] and "flag" in failed["error"], failed["error"]
    for other in lab.hosts[1:3]:
        assert node(results, other.name)["status"] == "ok", results
    flags = json.loads(lab.cli("flags", "prebound", "--json", check=0).stdout)
    assert set(flags) == {"up-1", "up-2"}


MEASURE_UNDER_FLOOD = '''
import time
from unicorn_ansible import Experiment, FlagValues, Pipeline, Task, get_flag, set_flag


class Measure(Task):
    def run(self):
        time.sleep(4)  # the host's other user is flooding the tunnel's port by now
        latencies = []
        for number in range(40):
            started = time.monotonic()
            set_flag("n", FlagValues(int_value=number))
            assert get_flag("n").int_value == number
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
        return latencies


def experiment(nodes):
    return Experiment().append(nodes.take(1)[0], Pipeline([Measure(name="measure")]))
'''

FLOOD = """
import socket, sys, time
port, count, until = int(sys.argv[1]), int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
socks, opened = [], 0
while time.monotonic() < until:
    while len(socks) < count and time.monotonic() < until:
        sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.connect(("127.0.0.1", port))
            sock.send(b"unicorn-fl")
        except OSError:
            sock.close()
            time.sleep(0.05)
            break
        sock.setblocking(False)
        socks.append(sock)
        opened += 1
    alive = []
    for sock in socks:
        try:
            gone = sock.recv(4096) in (b"", b"busy\\n")
        except BlockingIOError:
            gone = False
        except OSError:
            gone = True
        (sock.close() if gone else alive.append(sock))
    socks = alive
    time.sleep(0.01)
print(opened, flush=True)
"""


def test_flag_operations_stay_fast_while_another_user_floods_the_port(lab: Lab, monkeypatch) -> None:
    host = lab.hosts[2]
    port = 31200 + int(host.address.rsplit(".", 1)[1])
    monkeypatch.setattr(flag_server, "_random_port", lambda: port)
    flooder = subprocess.Popen(["ip", "netns", "exec", host.netns, "setpriv", "--reuid=65534", "--regid=65534",
                                "--clear-groups", sys.executable, "-c", FLOOD, str(port), "500", "40"],
                               stdout=subprocess.PIPE, text=True)
    namespace: dict = {}
    exec(compile(MEASURE_UNDER_FLOOD, "measure.py", "exec"), namespace)
    client = Client(str(lab.inventory("flooded", hosts=[host.name])))
    try:
        client.run(namespace["experiment"](client.get_nodes()), "flooded")
    finally:
        opened = int(flooder.communicate(timeout=60)[0] or 0)
    measured = node(lab.results("flooded"), host.name)
    assert measured["status"] == "ok", measured
    latencies = measured["tasks"]["measure"][0]["value"]
    assert opened >= 500 and max(latencies) < 1.0, (opened, sorted(latencies)[-5:])
