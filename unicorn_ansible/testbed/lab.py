"""A local lab of SSH hosts: network namespaces on a bridge, each with its own sshd.

``up(N)`` makes hosts ``h1``..``hN``: network namespace ``ua-hK`` with address
10.77.x.y on the bridge ``ua-br0`` (the controller is 10.77.0.1), an sshd of its
own (key-only login, keys generated for the testbed) in a mount and a UTS
namespace of its own: its own hostname (``hK``, resolving to its address), a
private /tmp, /root and /home, and the controller's virtual environment and
project folder hidden, so hosts have nothing but the system Python — like real
lab hosts — and the controller's cgroup hierarchies mounted (container engines need them). It fills the template ``inventories/testbed/inventory.ini.j2`` into
an inventory to pass to ``-i``.

The state folder (``~/.unicorn-ansible/testbed``) records, as they are made, the
namespaces, the bridge and the sshd processes; ``down()`` removes those and the
folder (keys included), nothing else, so a testbed of another home is left alone.

Optional link emulation on each host's link: ``rate`` (tc tbf) and
``delay_ms``/``loss_pct`` (tc netem, where the kernel has it). Needs root,
iproute2, util-linux (unshare), sudo and Debian's openssh-server.
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
from ..home import HOME_ENV, testbed_dir
from ..inventory import architecture_of
from ..resources import PACKAGE_DIR, inventories_dir

BRIDGE = "ua-br0"
PREFIX = "ua-h"
CONTROLLER_ADDRESS = "10.77.0.1"
USER = "unicorn"
MAX_HOSTS = 250 * 200
SUDOERS = Path("/etc/sudoers.d/unicorn-testbed")
SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = "/root/.testbed/sshd_config"  # as a host's sshd sees it (its own /root)
INVENTORY_TEMPLATE = "inventory.ini.j2"  # in inventories/testbed/
_REQUIRED = {
    "ip": "iproute2",
    "tc": "iproute2",
    "unshare": "util-linux",
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


def address_of(number: int) -> str:
    """Host K's address: 10.77.0.11 for h1 ... 10.77.0.250 for h240, then 10.77.1.10 and on."""
    block, offset = divmod(number - 1, 240)
    return f"10.77.{block}.{offset + 11 if block == 0 else offset + 10}"


def _run(*command: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
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
    """What hosts must not see: the controller's Python environment and the project folder
    (a path inside another hidden one is covered by it)."""
    if hide is None:
        hide = [sys.prefix]
        if (PACKAGE_DIR.parent / "pyproject.toml").exists():
            hide.append(str(PACKAGE_DIR.parent))
    paths = sorted({Path(p).resolve() for p in hide if Path(p).exists()} - {Path("/usr"), Path("/")})
    kept: list[Path] = []
    for path in paths:
        if not any(parent in kept for parent in path.parents):
            kept.append(path)
    return [str(path) for path in kept]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    write_atomic(path, text, mode)


def _ensure_user(password: str) -> None:
    if _run("id", "-u", USER, check=False).returncode != 0:
        _run("useradd", "--no-create-home", "--home-dir", f"/home/{USER}", "--shell", "/bin/bash", USER)
    _run("chpasswd", input=f"{USER}:{password}\n")
    _write(SUDOERS, f"# unicorn-ansible testbed: {USER} may use sudo with its password\n{USER} ALL=(ALL:ALL) ALL\n",
           0o440)


def _sshd_config(address: str) -> str:
    return "\n".join([
        "# unicorn-ansible testbed host",
        "Port 22",
        f"ListenAddress {address}",
        "HostKey /root/.testbed/ssh_host_ed25519_key",
        "PidFile none",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "UseDNS no",
        "StrictModes no",
        "MaxSessions 100",
        "MaxStartups 200:30:400",
        "Subsystem sftp internal-sftp",
        "",
    ])


def _etc_hosts(name: str, address: str) -> str:
    """A host's /etc/hosts: its own name resolves to its address, as on a lab host."""
    return f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{address}\t{name}\n"


def _prepare_host_files(state: Path, name: str, address: str, public_key: str, host_key: Path, unicorn_uid: int,
                        unicorn_gid: int) -> Path:
    folder = state / "hosts" / name
    root = folder / "root"
    home = folder / "home" / USER
    for path in (root / ".ssh", root / ".testbed", home / ".ssh"):
        path.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    os.chmod(folder / "home", 0o755)  # the user must reach its home whatever the umask made of /home
    # a plain shell: no pyenv init or the like costing every remote command
    for profile in (".bashrc", ".profile"):
        _write(root / profile, "# unicorn-ansible testbed host\n")
        _write(home / profile, "# unicorn-ansible testbed host\n")
    _write(root / ".ssh" / "authorized_keys", public_key, 0o600)
    _write(home / ".ssh" / "authorized_keys", public_key, 0o600)
    shutil.copyfile(host_key, root / ".testbed" / "ssh_host_ed25519_key")
    os.chmod(root / ".testbed" / "ssh_host_ed25519_key", 0o600)
    _write(root / ".testbed" / "sshd_config", _sshd_config(address))
    _write(folder / "etc" / "hosts", _etc_hosts(name, address))
    for path in (home, home / ".ssh", home / ".ssh" / "authorized_keys", home / ".bashrc", home / ".profile"):
        os.chown(path, unicorn_uid, unicorn_gid)
    os.chmod(home, 0o750)
    return folder


def _start_sshd(folder: Path, name: str, netns: str, hidden: list[str], log: Path) -> int:
    # In a UTS namespace of its own the host gets its own hostname. Bind its /etc/hosts
    # and the private /home first, then /root (the state folder may live under /root),
    # then a private /tmp, then hide the controller's environment and project.
    script = "\n".join([
        "set -e",
        f"hostname {_quote(name)}",
        f"mount --bind {_quote(str(folder / 'etc' / 'hosts'))} /etc/hosts",
        f"mount --bind {_quote(str(folder / 'home'))} /home",
        f"mount --bind {_quote(str(folder / 'root'))} /root",
        "mount -t tmpfs -o mode=1777 tmpfs /tmp",
        # (a path under /tmp is already gone with the private /tmp)
        *[f"if [ -d {_quote(path)} ]; then mount -t tmpfs -o size=1m,mode=755 tmpfs {_quote(path)}; fi"
          for path in hidden],
        *_cgroup_mounts(),
        "mkdir -p /run/sshd",
        f"exec {SSHD} -D -e -f {SSHD_CONFIG}",
    ])
    with open(log, "ab") as output:
        process = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--uts", "--propagation", "private",
             "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return process.pid


def _cgroup_mounts(mounts: str = "/proc/self/mounts") -> list[str]:
    """Shell lines that mount the controller's cgroup hierarchies again in a host's namespaces
    (``ip netns exec`` gives it a /sys without them), so container runtimes work on hosts; a
    hierarchy that cannot be mounted is left out, never a reason for the host not to start."""
    lines = []
    with open(mounts) as table:
        for entry in table:
            device, target, kind, options = entry.split()[:4]
            if target.startswith("/sys/fs/cgroup") and kind in ("tmpfs", "cgroup", "cgroup2"):
                wanted = ",".join(o for o in options.split(",") if o not in ("rw", "relatime", "nosuid", "nodev",
                                                                            "noexec", "seclabel"))
                if kind == "cgroup" and all(o.startswith("name=") for o in wanted.split(",")):
                    wanted = f"none,{wanted}"  # a named hierarchy without controllers
                lines.append(f"mkdir -p {_quote(target)} && mount -t {kind} -o {_quote(wanted or 'defaults')} "
                             f"{_quote(device)} {_quote(target)} || true")
    return lines


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


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
                           f"{HOME_ENV}={_quote(str(Path(owner).parent))} unicorn-ansible testbed down")
    raise TestbedError(f"a testbed is already up (the bridge {BRIDGE} exists); take it down first with "
                       f"`unicorn-ansible testbed down` in the home that made it")


def _up(testbed: Testbed, count: int, hidden: list[str]) -> Testbed:
    state = Path(testbed.state_dir)
    testbed.save()
    public_key, host_key = _make_keys(state)
    owner = _prepare_user(state)
    (state / "logs").mkdir()
    _make_bridge(testbed)
    for number in range(1, count + 1):
        _add_host(testbed, number, public_key, host_key, owner, hidden)
    _wait_for_ssh(testbed.hosts, state / "logs")
    _write(Path(testbed.inventory), _inventory(testbed.hosts, testbed.key))
    testbed.save()
    return testbed


def _make_keys(state: Path) -> tuple[str, Path]:
    """The testbed's login key and the hosts' host key: (the login key's public half, the host key)."""
    host_key = state / "ssh_host_ed25519_key"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "unicorn-ansible-testbed", "-f", str(state / "id_ed25519"))
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "unicorn-ansible-testbed-host", "-f", str(host_key))
    return (state / "id_ed25519.pub").read_text(), host_key


def _prepare_user(state: Path) -> tuple[int, int]:
    """The sudo user with a fresh password (kept in the state folder): its uid and gid."""
    import pwd

    password = secrets.token_urlsafe(18)
    _write(state / "become_password", password + "\n", 0o600)
    _ensure_user(password)
    entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


def _make_bridge(testbed: Testbed) -> None:
    """The hosts' bridge, recorded as this testbed's once made, and naming its state as its alias."""
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    testbed.bridge = BRIDGE
    testbed.save()
    _run("ip", "link", "set", BRIDGE, "alias", testbed.state_dir)
    _run("ip", "addr", "add", f"{CONTROLLER_ADDRESS}/16", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")


def _add_host(testbed: Testbed, number: int, public_key: str, host_key: Path, owner: tuple[int, int],
              hidden: list[str]) -> None:
    """Host K: its namespace (recorded once made), its link to the bridge, its files and its sshd."""
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
    folder = _prepare_host_files(state, name, address, public_key, host_key, *owner)
    host.pid = _start_sshd(folder, name, netns, hidden, state / "logs" / f"{name}.log")


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
            "rate": testbed.rate, "delay_ms": testbed.delay_ms, "loss_pct": testbed.loss_pct, "hosts": hosts,
            "healthy": all(h["netns_exists"] and h["sshd_alive"] for h in hosts)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError, OverflowError):
        return False


def down() -> bool:
    """Take down this home's testbed: stop its processes, delete the namespaces and the bridge its state
    records, then the state (keys included). Another home's testbed is left alone. Idempotent; False when
    there was nothing recorded to take down."""
    state = testbed_dir()
    testbed = _recorded(state / "testbed.json")
    if testbed is not None:
        _stop_processes(testbed)
        for host in testbed.hosts:
            _run("ip", "netns", "del", host.netns, check=False)
        if testbed.bridge:
            _run("ip", "link", "del", testbed.bridge, check=False)
        _retire_user_unless_a_testbed_is_up()
    shutil.rmtree(state, ignore_errors=True)
    return testbed is not None


def _recorded(path: Path) -> Testbed | None:
    try:
        return Testbed.load(path)
    except (TestbedError, KeyError, TypeError):
        return None


def _stop_processes(testbed: Testbed) -> None:
    """Kill every process in the testbed's namespaces, and its sshds (also where a namespace is gone)."""
    pids = {host.pid for host in testbed.hosts if host.pid and _is_testbed_sshd(host.pid)}
    for host in testbed.hosts:
        found = _run("ip", "netns", "pids", host.netns, check=False).stdout.split()
        pids.update(int(pid) for pid in found if pid.isdigit())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _is_testbed_sshd(pid: int) -> bool:
    """Whether ``pid`` is still a testbed host's sshd (a recorded pid may since belong to another process)."""
    try:
        return SSHD_CONFIG in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _retire_user_unless_a_testbed_is_up() -> None:
    """The sudo rule and the user's login go with the last testbed (the bridge's name is fixed)."""
    if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        return
    if SUDOERS.exists():
        SUDOERS.unlink()
    if _run("id", "-u", USER, check=False).returncode == 0:
        _run("usermod", "--lock", USER, check=False)


def restart(name: str) -> TestbedHost:
    """Start a host's sshd again (after a test or a user killed what ran in its namespace)."""
    state = testbed_dir()
    testbed = Testbed.load(state / "testbed.json")
    host = testbed.host(name)
    folder = state / "hosts" / name
    host.pid = _start_sshd(folder, name, host.netns, _hidden_paths(None), state / "logs" / f"{name}.log")
    _wait_for_ssh([host], state / "logs")
    testbed.save()
    return host
