"""The testbed itself: isolation of hosts, their own hostnames, link shaping, a teardown of its own."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unicorn_ansible.errors import TestbedError as BedError
from unicorn_ansible.testbed import lab as _testbed

from .conftest import Lab, node

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); total = 0
while True:
    data = c.recv(65536)
    if not data:
        break
    total += len(data)
print(total)
"""

CLIENT = """
import socket, sys, time
payload = b"x" * int(sys.argv[2])
for _ in range(50):
    try:
        c = socket.create_connection((sys.argv[1], 5201), timeout=5)
        break
    except OSError:
        time.sleep(0.05)
start = time.perf_counter(); c.sendall(payload); c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
"""


def _transfer_seconds(bed: _testbed.Testbed, size: int) -> float:
    """Send ``size`` bytes from h1 to h2 over their links; seconds until h2 has them all."""
    h1, h2 = bed.host("h1"), bed.host("h2")
    server = subprocess.Popen(["ip", "netns", "exec", h2.netns, sys.executable, "-c", SERVER, h2.address],
                              stdout=subprocess.PIPE, text=True)
    try:
        start = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", h1.netns, sys.executable, "-c", CLIENT, h2.address, str(size)],
                       check=True, timeout=60)
        received = server.communicate(timeout=60)[0].strip()
        elapsed = time.perf_counter() - start
    finally:
        server.kill()
    assert received == str(size)
    return elapsed


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the testbed tests need root; run them as root (scripts/test.sh does)")
    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(tmp_path))
    yield tmp_path
    _testbed.down()


def _namespaces() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


def _bridge_exists() -> bool:
    return subprocess.run(["ip", "link", "show", _testbed.BRIDGE], capture_output=True).returncode == 0


def test_a_rate_limited_link_slows_a_transfer(home: Path) -> None:
    size = 1_500_000  # 12 Mbit: about 2.4 s at 5 mbit/s
    fast = _transfer_seconds(_testbed.up(2), size)
    _testbed.down()
    slow = _transfer_seconds(_testbed.up(2, rate="5mbit"), size)
    assert slow > 1.5, (fast, slow)
    assert slow > 4 * fast, (fast, slow)


def test_netem_options_fail_clearly_where_the_kernel_lacks_netem(home: Path) -> None:
    if _testbed._qdisc_works("netem", "delay", "1ms"):
        bed = _testbed.up(1, delay_ms=20)
        assert bed.delay_ms == 20
        return
    with pytest.raises(BedError, match="netem"):
        _testbed.up(2, delay_ms=10)
    assert _testbed.status() is None  # nothing was left half made
    assert "ua-h1" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_down_leaves_nothing_and_up_twice_is_refused(home: Path) -> None:
    bed = _testbed.up(3)
    with pytest.raises(BedError, match="already up"):
        _testbed.up(1)
    status = _testbed.status()
    assert status["healthy"] and [h["name"] for h in status["hosts"]] == ["h1", "h2", "h3"]
    pids = [h.pid for h in bed.hosts]
    assert _testbed.down() is True
    assert not {h.netns for h in bed.hosts} & set(_namespaces())
    assert not _bridge_exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    assert _testbed.status() is None and not Path(bed.state_dir).exists() and not Path(bed.key).exists()
    assert _testbed.down() is False  # idempotent


def test_down_takes_down_only_the_testbed_of_its_own_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bed = _testbed.up(2)
    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(home / "another-home"))  # another suite, another user
    assert _testbed.down() is False
    with pytest.raises(BedError, match=f"already up, from {re.escape(bed.state_dir)}"):
        _testbed.up(1)
    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(home))
    assert _testbed.status()["healthy"]
    assert {h.netns for h in bed.hosts} <= set(_namespaces()) and _bridge_exists()


def test_a_failed_up_removes_what_it_made_and_nothing_else(home: Path) -> None:
    subprocess.run(["ip", "netns", "add", "ua-h2"], check=True)  # not the testbed's: in the way of its h2
    try:
        with pytest.raises(BedError, match="ua-h2"):
            _testbed.up(2)
        assert "ua-h1" not in _namespaces() and "ua-h2" in _namespaces()
        assert not _bridge_exists() and _testbed.status() is None
    finally:
        subprocess.run(["ip", "netns", "del", "ua-h2"], check=True)


def test_hosts_are_isolated_from_each_other_and_the_controller(lab: Lab) -> None:
    marker = f"marker-{time.time_ns()}"
    assert lab.ssh("h1", f"echo {marker} > /tmp/{marker}").returncode == 0
    assert lab.ssh("h1", f"cat /tmp/{marker}").stdout.strip() == marker
    assert lab.ssh("h2", f"test -e /tmp/{marker}").returncode != 0
    assert not Path(f"/tmp/{marker}").exists()
    project = Path(__file__).resolve().parents[2]
    assert lab.ssh("h1", f"test -e {project}/pyproject.toml").returncode != 0
    assert lab.ssh("h1", f"test -e {sys.prefix}/bin/python").returncode != 0
    assert lab.ssh("h1", "python3 -c 'import sys; print(sys.version_info[0])'").stdout.strip() == "3"
    # host to host over the bridge
    assert lab.ssh("h1", f"ping -c 1 -W 2 {lab.bed.host('h3').address}").returncode == 0


def test_the_unicorn_user_needs_its_password_for_sudo(lab: Lab) -> None:
    assert lab.ssh("h1", "whoami", user="unicorn").stdout.strip() == "unicorn"
    ok = lab.ssh("h1", f"echo {lab.become_password} | sudo -S -p '' id -u", user="unicorn")
    assert ok.stdout.strip() == "0", ok.stderr
    refused = lab.ssh("h1", "echo wrong-password | sudo -S -p '' id -u", user="unicorn")
    assert refused.returncode != 0


def test_the_cli(lab: Lab) -> None:
    done = lab.cli("testbed", "status", "--json", check=0)
    assert '"healthy": true' in done.stdout
    shown = lab.cli("testbed", "status", check=0).stdout
    assert all(host.name in shown and host.address in shown for host in lab.hosts) and "DOWN" not in shown
    done = lab.cli("testbed", "up", "--hosts", "2", check=1)
    assert "already up" in done.stderr and "Traceback" not in done.stderr


WHO_AM_I = """
from unicorn_ansible import Experiment, Pipeline, Task

class WhoAmI(Task):
    def run(self):
        import socket
        name = socket.gethostname()
        return {"hostname": name, "address": socket.gethostbyname(name)}

def experiment(nodes):
    return Experiment().map(Pipeline().then(WhoAmI(name="who")), nodes.take(len(nodes)))
"""


def test_tasks_see_their_own_hosts_name(lab: Lab) -> None:
    (lab.root / "whoami.py").write_text(WHO_AM_I)
    lab.cli("run", "whoami.py", "-i", lab.bed.inventory, "--name", "whoami", check=0)  # the testbed's own inventory
    results = lab.results("whoami")
    for host in lab.hosts:
        [seen] = node(results, host.name)["tasks"]["who"]
        assert seen["value"] == {"hostname": host.name, "address": host.address}, host.name
    assert socket.gethostname() not in {host.name for host in lab.hosts}  # the controller keeps its own
