"""A local lab of SSH hosts: network namespaces on a bridge, each with its own sshd and its own root.

``up(N)`` makes hosts ``h1``..``hN``: network namespace ``ua-hK`` with address 10.77.x.y on the
bridge ``ua-br0`` (the controller is 10.77.0.1), and an sshd of its own (key-only login, keys
generated for the testbed) in a mount and a UTS namespace of its own: its own hostname (``hK``,
resolving to its address) and its own root, an overlay of the machine's (``layers``): a host sees
the machine's packages and package configuration, and what it changes (``apt-get install``,
``pip install``, files anywhere) stays on that host; the controller's virtual environment, the
project folder, the controller's home and the machine's /home are hidden, so hosts have the
system Python and its packages — like real lab hosts. Hosts reach the machine's apt sources, and
nothing else off the bridge, through the testbed's apt proxy (``aptproxy``). It fills the template
``inventories/testbed/inventory.ini.j2`` into an inventory to pass to ``-i``.

The state folder (``~/.unicorn-ansible/testbed``) records, as they are made, the namespaces, the
bridge, the processes and the layers' tmpfs where one was needed; ``down()`` removes those and the
folder (keys and layers included), nothing else, so a testbed of another home is left alone. The
machine itself keeps no trace: the user ``unicorn`` and its sudo rule exist only in the hosts.

Optional link emulation on each host's link: ``rate`` (tc tbf) and
``delay_ms``/``loss_pct`` (tc netem, where the kernel has it). Needs root, iproute2, util-linux
(unshare, pivot_root), overlayfs, passwd (useradd, chpasswd), sudo and Debian's openssh-server.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from ..engine.rundir import read_json, write_atomic, write_json
from ..errors import TestbedError
from ..home import HOME_ENV, home_dir, testbed_dir
from ..inventory import architecture_of
from ..resources import PACKAGE_DIR, inventories_dir
from . import aptproxy, layers
from .layers import SSHD, SSHD_CONFIG, USER

BRIDGE = "ua-br0"
PREFIX = "ua-h"
CONTROLLER_ADDRESS = "10.77.0.1"
MAX_HOSTS = 250 * 200
MEMORY_LAYERS = "unicorn-testbed-layers"  # the tmpfs's name, where the layers must live in memory
INVENTORY_TEMPLATE = "inventory.ini.j2"  # in inventories/testbed/
_REQUIRED = {
    "ip": "iproute2",
    "tc": "iproute2",
    "unshare": "util-linux",
    "pivot_root": "util-linux",
    "useradd": "passwd",
    "chpasswd": "passwd",
    "sudo": "sudo",
    "ssh-keygen": "openssh-client",
    SSHD: "openssh-server",
}


@dataclass
class TestbedHost:
    name: str
    address: str
    netns: str
    pid: int = 0


@dataclass
class Testbed:
    """A running testbed, as ``testbed.json`` records it."""

    state_dir: str
    hosts: list[TestbedHost]
    key: str
    inventory: str
    user: str = USER
    become_password_file: str = ""
    rate: str | None = None
    delay_ms: float | None = None
    loss_pct: float | None = None
    created: float = field(default_factory=time.time)
    bridge: str = ""  # set once this testbed made it: down() removes only what is recorded
    layers: str = ""  # where the hosts' layers are: layers.Rooms ("disk", or "memory" in a tmpfs)
    layers_mount: str = ""  # the tmpfs mounted for them, recorded before it is mounted
    apt_proxy: str = ""  # address:port of the apt proxy on the bridge ("" without apt sources)
    apt_proxy_pid: int = 0

    @classmethod
    def load(cls, path: Path) -> Testbed:
        data = read_json(path)
        if data is None:
            raise TestbedError(f"the testbed's state {path} is missing or unreadable; take what is left down "
                               "with 'unicorn-ansible testbed down'")
        data["hosts"] = [TestbedHost(**host) for host in data["hosts"]]
        return cls(**data)

    def save(self) -> None:
        write_json(Path(self.state_dir) / "testbed.json", asdict(self))

    def host(self, name: str) -> TestbedHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def root_of(self, name: str) -> Path:
        """Host ``name``'s / as the controller sees it, ``/proc/<its sshd>/root``: its overlay is mounted
        only in its own mount namespace, which lives as long as the host's processes do."""
        host = self.host(name)
        if not _is_testbed_sshd(host.pid):
            raise TestbedError(f"host {name} is down (its sshd is not running): its files are out of reach "
                               "until it is started again")
        return Path(f"/proc/{host.pid}/root")


def address_of(number: int) -> str:
    """Host K's address: 10.77.0.11 for h1 ... 10.77.0.250 for h240, then 10.77.1.10 and on."""
    block, offset = divmod(number - 1, 240)
    return f"10.77.{block}.{offset + 11 if block == 0 else offset + 10}"


def _run(*command: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(command), capture_output=True, text=True, input=input)
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise TestbedError(f"`{' '.join(command)}` failed: {detail[-1] if detail else f'exit {done.returncode}'}")
    return done


def check_prerequisites() -> None:
    """Refuse clearly when something the testbed needs is missing."""
    if os.geteuid() != 0:
        raise TestbedError("the testbed needs root (network namespaces, sshd): run it as root or with sudo")
    missing = sorted({package for tool, package in _REQUIRED.items()
                      if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool))})
    if missing:
        raise TestbedError(f"the testbed needs {', '.join(missing)}: apt-get install {' '.join(missing)}")


def _qdisc_works(*qdisc: str) -> bool:
    """Try a qdisc on a throwaway veth pair (the kind of link testbed hosts have)."""
    probe = "ua-qprobe0"
    _run("ip", "link", "add", probe, "type", "veth", "peer", "name", "ua-qprobe1", check=False)
    try:
        return _run("tc", "qdisc", "add", "dev", probe, "root", *qdisc, check=False).returncode == 0
    finally:
        _run("ip", "link", "del", probe, check=False)


def _hidden_paths(hide: Sequence[str] | None) -> list[str]:
    """What hosts must not see: the controller's Python environment, the project folder, the controller's
    home (runs, the testbed's state and keys) and root's default one (its hosts' work root, empty on hosts)."""
    if hide is None:
        hide = [sys.prefix, str(home_dir()), str(Path("/root/.unicorn-ansible"))]
        if (PACKAGE_DIR.parent / "pyproject.toml").exists():
            hide.append(str(PACKAGE_DIR.parent))
    return layers.masked_paths(str(Path(path).resolve()) for path in hide)


def _start_sshd(state: Path, name: str, netns: str, log: Path) -> int:
    """A host's sshd in its network namespace and a mount and UTS namespace of its own, on its own root."""
    script = layers.start_script(state, name, layers.cgroup_mounts(), layers.shared_container_paths(),
                                 f"{SSHD} -D -e -f {SSHD_CONFIG}")
    with open(log, "ab") as output:
        process = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--uts", "--propagation", "private",
             "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return process.pid


def _wait_for_ssh(hosts: list[TestbedHost], log_dir: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(hosts)
    while pending:
        still = []
        for host in pending:
            try:
                with socket.create_connection((host.address, 22), timeout=0.5) as connection:
                    connection.recv(4)
            except OSError:
                still.append(host)
        pending = still
        if pending and time.monotonic() > deadline:
            log = (log_dir / f"{pending[0].name}.log").read_text(errors="replace").strip().splitlines()
            reason = next((line.strip() for line in log if "mount:" in line or "sshd" in line.lower()),
                          log[-1].strip() if log else "no output")
            raise TestbedError(f"sshd of {pending[0].name} did not start: {reason}")
        if pending:
            time.sleep(0.05)


def _shape(device: str, netns: str | None, rate: str | None, delay_ms: float | None,
           loss_pct: float | None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    if delay_ms or loss_pct:
        netem = ["netem"]
        if delay_ms:
            netem += ["delay", f"{delay_ms}ms"]
        if loss_pct:
            netem += ["loss", f"{loss_pct}%"]
        if rate:
            netem += ["rate", rate]
        _run(*prefix, "tc", "qdisc", "add", "dev", device, "root", *netem)
    elif rate:
        _run(*prefix, "tc", "qdisc", "add", "dev", device, "root", "tbf", "rate", rate, "burst", "32kbit",
             "latency", "400ms")


def up(hosts: int, *, delay_ms: float | None = None, loss_pct: float | None = None, rate: str | None = None,
       hide: Sequence[str] | None = None) -> Testbed:
    """Bring up ``hosts`` SSH hosts; return the Testbed (its inventory is ``Testbed.inventory``)."""
    check_prerequisites()
    if not 1 <= hosts <= MAX_HOSTS:
        raise TestbedError(f"--hosts must be between 1 and {MAX_HOSTS}, got {hosts}")
    state = testbed_dir()
    _refuse_when_up(state)
    if (delay_ms or loss_pct) and not _qdisc_works("netem", "delay", "1ms"):
        raise TestbedError(
            "--delay and --loss need the kernel's netem qdisc (sch_netem), which this kernel does not have; "
            "use --rate alone, or a kernel with netem (modprobe sch_netem)"
        )
    if rate and not _qdisc_works("tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"):
        raise TestbedError(f"--rate {rate} is not a rate tc understands; use e.g. 10mbit or 500kbit")
    layers.check_paths(state)
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    os.chmod(state, 0o700)
    testbed = Testbed(str(state), [], str(state / "id_ed25519"), str(state / "inventory.ini"), USER,
                      str(state / "become_password"), rate, delay_ms, loss_pct)
    try:
        return _up(testbed, hosts, _hidden_paths(hide))
    except BaseException:
        down()
        raise


def _refuse_when_up(state: Path) -> None:
    """Refuse a second testbed: the one here, or another home's (the bridge names the state that owns it)."""
    if (state / "testbed.json").exists():
        raise TestbedError("a testbed is already up; run `unicorn-ansible testbed down` first")
    shown = _run("ip", "-json", "link", "show", BRIDGE, check=False)
    if shown.returncode != 0:
        return
    owner = (json.loads(shown.stdout or "[{}]") or [{}])[0].get("ifalias", "")
    if owner:
        raise TestbedError(f"a testbed is already up, from {owner}; take it down first: "
                           f"{HOME_ENV}={layers.quote(str(Path(owner).parent))} unicorn-ansible testbed down")
    raise TestbedError(f"a testbed is already up (the bridge {BRIDGE} exists); take it down first with "
                       f"`unicorn-ansible testbed down` in the home that made it")


def _up(testbed: Testbed, count: int, hidden: list[str]) -> Testbed:
    state = Path(testbed.state_dir)
    testbed.save()
    public_key, host_key = _make_keys(state)
    owner = _make_layers(testbed)
    (state / "logs").mkdir()
    _make_bridge(testbed)
    _start_apt_proxy(testbed)
    layers.fill_seed(state, owner, public_key, host_key, hidden, testbed.apt_proxy)
    for number in range(1, count + 1):
        _add_host(testbed, number)
    _wait_for_ssh(testbed.hosts, state / "logs")
    write_atomic(Path(testbed.inventory), _inventory(testbed.hosts, testbed.key), 0o644)
    testbed.save()
    return testbed


def _make_keys(state: Path) -> tuple[str, Path]:
    """The testbed's login key and the hosts' host key: (the login key's public half, the host key)."""
    host_key = state / "ssh_host_ed25519_key"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "unicorn-ansible-testbed", "-f", str(state / "id_ed25519"))
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "unicorn-ansible-testbed-host", "-f", str(host_key))
    return (state / "id_ed25519.pub").read_text(), host_key


def _make_layers(testbed: Testbed) -> tuple[int, int]:
    """The hosts' seed, with the sudo user ``unicorn`` and a fresh password (kept in the state folder):
    the user's uid and gid."""
    state = Path(testbed.state_dir)
    password = secrets.token_urlsafe(18)
    write_atomic(state / "become_password", password + "\n", 0o600)
    rooms, uid, gid = layers.make_seed(state, password, lambda path: _mount_memory(testbed, path))
    testbed.layers = rooms.value
    testbed.save()
    return uid, gid


def _mount_memory(testbed: Testbed, path: Path) -> None:
    """A tmpfs for the layers (where the state folder's filesystem cannot hold an overlay's upper layer),
    recorded before it is mounted so that down() unmounts it whatever happens next."""
    testbed.layers_mount = str(path)
    testbed.save()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    _run("mount", "-t", "tmpfs", "-o", "mode=700", MEMORY_LAYERS, str(path))


def _start_apt_proxy(testbed: Testbed) -> None:
    """The apt proxy on the bridge, for the hosts named in the machine's apt sources (none without them).
    Its socket is bound here, so hosts can use it before the process has even started."""
    allowed = aptproxy.source_hosts()
    if not allowed:
        return
    state = Path(testbed.state_dir)
    with socket.socket() as listening:
        listening.bind((CONTROLLER_ADDRESS, 0))
        listening.listen(64)
        with open(state / "logs" / "apt-proxy.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-I", aptproxy.__file__, "--fd", str(listening.fileno()), "--allow",
                 ",".join(allowed), "--state", str(state)],
                pass_fds=(listening.fileno(),), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        testbed.apt_proxy = f"{CONTROLLER_ADDRESS}:{listening.getsockname()[1]}"
    testbed.apt_proxy_pid = process.pid
    testbed.save()


def _make_bridge(testbed: Testbed) -> None:
    """The hosts' bridge, recorded as this testbed's once made, and naming its state as its alias."""
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    testbed.bridge = BRIDGE
    testbed.save()
    _run("ip", "link", "set", BRIDGE, "alias", testbed.state_dir)
    _run("ip", "addr", "add", f"{CONTROLLER_ADDRESS}/16", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")


def _add_host(testbed: Testbed, number: int) -> None:
    """Host K: its namespace (recorded once made), its link to the bridge, its layer and its sshd."""
    state = Path(testbed.state_dir)
    name, netns, address, outside = f"h{number}", f"{PREFIX}{number}", address_of(number), f"ua-v{number}"
    _run("ip", "netns", "add", netns)
    host = TestbedHost(name, address, netns)
    testbed.hosts.append(host)
    testbed.save()
    # The namespace is new (adding it succeeded), so a link already named like its own is an orphan
    # whose peer's namespace the kernel has not finished removing (a testbed taken down moments ago).
    _run("ip", "link", "del", outside, check=False)
    _run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns)
    _run("ip", "link", "set", outside, "master", testbed.bridge, "up")
    _run("ip", "-n", netns, "addr", "add", f"{address}/16", "dev", "eth0")
    _run("ip", "-n", netns, "link", "set", "eth0", "up")
    _run("ip", "-n", netns, "link", "set", "lo", "up")
    if testbed.rate or testbed.delay_ms or testbed.loss_pct:
        _shape(outside, None, testbed.rate, testbed.delay_ms, testbed.loss_pct)
        _shape("eth0", netns, testbed.rate, testbed.delay_ms, testbed.loss_pct)
    layers.make_host_layer(state, name, address)
    host.pid = _start_sshd(state, name, netns, state / "logs" / f"{name}.log")


def _inventory(hosts: list[TestbedHost], key: str) -> str:
    """The template ``inventories/testbed/inventory.ini.j2`` filled with the hosts and the key."""
    loader = jinja2.FileSystemLoader(str(inventories_dir() / "testbed"))
    environment = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined)
    machine = os.uname()
    return environment.get_template(INVENTORY_TEMPLATE).render(
        hosts=hosts, key=key, architecture=architecture_of(machine.sysname, machine.machine).value)


def status() -> dict[str, Any] | None:
    """The testbed's hosts and whether each namespace and sshd is alive; None when no testbed is up."""
    path = testbed_dir() / "testbed.json"
    if not path.exists():
        return None
    testbed = Testbed.load(path)
    namespaces = set(_run("ip", "netns", "list", check=False).stdout.split())
    hosts = []
    for host in testbed.hosts:
        hosts.append({"name": host.name, "address": host.address, "netns": host.netns,
                      "netns_exists": host.netns in namespaces, "sshd_alive": _alive(host.pid)})
    return {"state_dir": testbed.state_dir, "inventory": testbed.inventory, "key": testbed.key, "user": testbed.user,
            "rate": testbed.rate, "delay_ms": testbed.delay_ms, "loss_pct": testbed.loss_pct,
            "layers": testbed.layers, "apt_proxy": testbed.apt_proxy, "hosts": hosts,
            "healthy": all(h["netns_exists"] and h["sshd_alive"] for h in hosts)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError, OverflowError):
        return False


def down() -> bool:
    """Take down this home's testbed: stop its processes (the hosts' overlays go with their mount
    namespaces), delete the namespaces and the bridge its state records, unmount the layers' tmpfs if it
    made one, then remove the state (keys and layers included). Another home's testbed is left alone.
    Idempotent; False when there was nothing recorded to take down."""
    state = testbed_dir()
    testbed = _recorded(state / "testbed.json")
    if testbed is not None:
        _stop_processes(testbed)
        for host in testbed.hosts:
            _run("ip", "netns", "del", host.netns, check=False)
        if testbed.bridge:
            _run("ip", "link", "del", testbed.bridge, check=False)
        if testbed.layers_mount and _mount_source(testbed.layers_mount) == MEMORY_LAYERS:
            _run("umount", "--lazy", testbed.layers_mount, check=False)
    shutil.rmtree(state, ignore_errors=True)
    return testbed is not None


def _recorded(path: Path) -> Testbed | None:
    try:
        return Testbed.load(path)
    except (TestbedError, KeyError, TypeError):
        return None


def _mount_source(path: str, table: str = "/proc/self/mountinfo") -> str | None:
    """The source of what is mounted on ``path`` (the last mount there), None when nothing is."""
    source = None
    with open(table) as mounts:
        for line in mounts:
            fields = line.split()
            separator = fields.index("-")
            if fields[4] == path:
                source = fields[separator + 2]
    return source


def _stop_processes(testbed: Testbed) -> None:
    """Kill every process in the testbed's network namespaces and in its hosts' mount namespaces (a
    host's process that left its network namespace still holds its overlay), its sshds (also where a
    namespace is gone) and its apt proxy; wait until they are gone, so their overlays are unmounted."""
    sshds = {host.pid for host in testbed.hosts if host.pid and _is_testbed_sshd(host.pid)}
    pids = set(sshds) | _in_mount_namespaces({_namespace_of(pid) for pid in sshds} - {None})
    for host in testbed.hosts:
        found = _run("ip", "netns", "pids", host.netns, check=False).stdout.split()
        pids.update(int(pid) for pid in found if pid.isdigit())
    if testbed.apt_proxy_pid and _is_apt_proxy(testbed.apt_proxy_pid, testbed.state_dir):
        pids.add(testbed.apt_proxy_pid)
    pids.discard(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _wait_until_gone(pids)


def _namespace_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _in_mount_namespaces(namespaces: set[str | None]) -> set[int]:
    if not namespaces:
        return set()
    return {int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _namespace_of(int(entry)) in namespaces}


def _wait_until_gone(pids: set[int], timeout: float = 5.0) -> None:
    """Until each killed process has exited (a zombie has left its namespaces), ``timeout`` at most."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.01)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_testbed_sshd(pid: int) -> bool:
    """Whether ``pid`` is still a testbed host's sshd (a recorded pid may since belong to another process)."""
    return SSHD_CONFIG in _command_line(pid)


def _is_apt_proxy(pid: int, state_dir: str) -> bool:
    """Whether ``pid`` is still this testbed's apt proxy."""
    command = _command_line(pid)
    return Path(aptproxy.__file__).name in command and state_dir in command


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def restart(name: str) -> TestbedHost:
    """Start a host's sshd again on its own root as it was (after a test or a user killed what ran in its
    namespace, and so its overlay)."""
    state = testbed_dir()
    testbed = Testbed.load(state / "testbed.json")
    host = testbed.host(name)
    host.pid = _start_sshd(state, name, host.netns, state / "logs" / f"{name}.log")
    _wait_for_ssh([host], state / "logs")
    testbed.save()
    return host
