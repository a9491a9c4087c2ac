"""The testbed itself: isolation of hosts, their own hostnames and roots, link shaping, a teardown of its own."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from unicorn_ansible.errors import TestbedError as BedError
from unicorn_ansible.testbed import lab as _testbed
from unicorn_ansible.testbed import layers

from .conftest import SSH_ARGS, Lab, node

MACHINE_PIP_CONF = Path("/root/.config/pip/pip.conf")

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
        pytest.skip("the testbed tests need root: run them as root (scripts/test.sh does); scripts/test.sh --fast "
                    "runs the tests that do not")
    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(tmp_path))
    yield tmp_path
    _testbed.down()


def _namespaces() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


def _bridge_exists() -> bool:
    return subprocess.run(["ip", "link", "show", _testbed.BRIDGE], capture_output=True).returncode == 0


def _mounted_anywhere(path: str) -> list[str]:
    """The processes whose mount table still names ``path``."""
    found = []
    for table in Path("/proc").glob("[0-9]*/mountinfo"):
        try:
            if path in table.read_text():
                found.append(table.parent.name)
        except OSError:
            continue
    return found


def _ssh(bed: _testbed.Testbed, host: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-i", bed.key, *SSH_ARGS.split(), f"root@{bed.host(host).address}", command],
                          capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def _machine_pip_setting(line: str) -> Iterator[None]:
    """``line`` in a section of its own in the machine's /root/.config/pip/pip.conf (pip reads no option
    from an unknown section), the file put back as it was afterwards (or removed, with the folders made)."""
    before = MACHINE_PIP_CONF.read_bytes() if MACHINE_PIP_CONF.exists() else None
    made = [folder for folder in (MACHINE_PIP_CONF.parent.parent, MACHINE_PIP_CONF.parent) if not folder.exists()]
    for folder in made:
        folder.mkdir()
    try:
        _replace(MACHINE_PIP_CONF, (before or b"") + f"\n[unicorn-testbed-probe]\n{line}\n".encode())
        yield
    finally:
        if before is None:
            MACHINE_PIP_CONF.unlink(missing_ok=True)
            for folder in reversed(made):
                folder.rmdir()
        else:
            _replace(MACHINE_PIP_CONF, before)


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` at once (other pip processes may read it meanwhile), keeping its mode."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    temporary = path.with_name(f".{path.name}.unicorn-testbed")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    temporary.replace(path)


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
    assert not _mounted_anywhere(bed.state_dir)  # the hosts' overlays went with their namespaces
    assert not _is_running(bed.apt_proxy_pid)
    assert _testbed.down() is False  # idempotent


def _is_running(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def test_hosts_see_the_machines_pip_configuration(home: Path) -> None:
    value = f"seen-{time.time_ns()}"
    with _machine_pip_setting(f"marker = {value}"):
        bed = _testbed.up(1)
        assert value in _ssh(bed, "h1", f"cat {MACHINE_PIP_CONF}").stdout
        listed = _ssh(bed, "h1", "python3 -m pip config list")
        if listed.returncode == 0:  # where the system Python has pip, pip itself reads it
            assert f"unicorn-testbed-probe.marker='{value}'" in listed.stdout
        # what a host writes there stays on the host
        assert _ssh(bed, "h1", f"echo changed-on-h1 >> {MACHINE_PIP_CONF}").returncode == 0
        assert "changed-on-h1" not in MACHINE_PIP_CONF.read_text()


def test_where_the_state_folder_cannot_hold_an_overlay_the_layers_live_in_memory(home: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # a state folder on an overlay (as where the machine's root is one: a container) cannot hold upper layers
    layers = {name: home / name for name in ("lower", "upper", "work", "overlaid")}
    for folder in layers.values():
        folder.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={layers['lower']},upperdir={layers['upper']},"
                    f"workdir={layers['work']}", str(layers["overlaid"])], check=True)
    try:
        monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(layers["overlaid"] / "home"))
        bed = _testbed.up(2)
        assert bed.layers == "memory" and bed.layers_mount == str(Path(bed.state_dir) / "layers")
        assert _ssh(bed, "h1", "touch /usr/local/made-on-h1 && hostname").stdout.strip() == "h1"
        assert (bed.root_of("h1") / "usr/local/made-on-h1").exists()
        assert _ssh(bed, "h2", "test -e /usr/local/made-on-h1").returncode == 1
        assert _testbed.down() is True
        assert not _mounted_anywhere(bed.state_dir) and not Path(bed.state_dir).exists()
    finally:
        _testbed.down()
        subprocess.run(["umount", str(layers["overlaid"])], check=True)
    assert not Path("/usr/local/made-on-h1").exists()


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


def test_each_host_has_a_root_of_its_own_over_the_machines(lab: Lab) -> None:
    marker = f"/usr/local/lib/unicorn-testbed-{time.time_ns()}"
    assert lab.ssh("h1", f"echo h1 > {marker} && cat {marker}").stdout.strip() == "h1"
    assert lab.ssh("h2", f"test -e {marker}").returncode == 1
    assert not Path(marker).exists()  # the machine's own root is untouched
    assert (lab.bed.root_of("h1") / marker.lstrip("/")).read_text() == "h1\n"  # the controller's view of h1
    # the machine's software and configuration are seen; its users' homes and root's keys are not
    assert lab.ssh("h1", "test -x /usr/sbin/sshd && test -f /etc/os-release").returncode == 0
    assert lab.ssh("h1", "ls -A /home").stdout.split() == ["unicorn"]
    assert lab.ssh("h1", "ls -A /root/.ssh").stdout.split() == ["authorized_keys"]
    assert lab.ssh("h1", "ls -A /root/.unicorn-ansible").stdout.split() == []
    # the user's sudo rule exists on the hosts only
    assert lab.ssh("h1", "test -f /etc/sudoers.d/unicorn-testbed && id -u unicorn").returncode == 0
    assert not Path("/etc/sudoers.d/unicorn-testbed").exists()
    # /run is the host's own (podman's folders excepted), /proc and /sys show the host's network
    own_run = set(lab.ssh("h1", "ls -A /run").stdout.split()) - {"sshd", "lock", *layers.PODMAN_RUN}
    assert own_run == set(), own_run
    assert _testbed.BRIDGE not in lab.ssh("h1", "cat /proc/net/dev; ls /sys/class/net").stdout


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
