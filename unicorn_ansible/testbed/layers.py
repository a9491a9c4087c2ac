"""Each testbed host's own root: an overlay of the machine's ``/`` that the host may change.

A host's processes (its sshd and all it starts) see as ``/`` an overlay mounted in the host's own
mount namespace: the machine's root filesystem below (read-only to the host: it sees the machine's
packages, Python and package configuration — apt's sources and lists, ``/etc/pip.conf``,
``/root/.config/pip``) and the host's own *upper* layer on top, where everything the host writes
goes: ``apt-get install`` on a host installs on that host alone (its own ``/var/lib/dpkg`` and apt
lock), and the machine's package state is never touched. Inside, ``/proc`` and ``/sys`` are the
host's (its network namespace), ``/dev`` is the machine's with a private ``/dev/shm``, ``/run`` and
``/tmp`` are fresh; podman's storage is the machine's (podman cannot keep its storage on an overlay).

Every upper layer starts as a copy of the testbed's *seed* (overlayfs refuses a lower layer inside
another, so the seed cannot be a layer of its own): the user ``unicorn`` with its password and sudo
rule, the login keys, the sshd configuration, the apt proxy's address, and empty folders in place of
what hosts must not see. The user is made by the system's own tools inside a throwaway overlay, so
the machine's /etc/passwd and /etc/shadow are never written.

The layers live in the testbed's state folder (``layers/``); where the state folder's filesystem
cannot be an overlay's upper layer (the machine's root is itself an overlay, as in a container),
they live in a tmpfs mounted there instead (``Rooms.MEMORY``), which ``down`` unmounts. Where the
kernel cannot overlay the machine's root at all, ``testbed up`` fails with the reason.

The controller sees a host's files as ``/proc/<its sshd>/root`` (``lab.Testbed.root_of``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..engine.rundir import write_atomic
from ..errors import TestbedError

USER = "unicorn"
HOME = f"/home/{USER}"
SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = "/root/.testbed/sshd_config"  # as a host's sshd sees it
HOST_KEY = "/root/.testbed/ssh_host_ed25519_key"
SUDOERS = "/etc/sudoers.d/unicorn-testbed"
APT_PROXY_CONF = "/etc/apt/apt.conf.d/99unicorn-testbed-proxy"
OPAQUE = "trusted.overlay.opaque"  # overlayfs: a folder that hides what the layers below hold there
#: podman's storage, shared with the machine (podman refuses storage on an overlay), and the runtime folders
#: of podman and its OCI runtimes, which two podmans on one storage must share too
PODMAN_STORAGE = "/var/lib/containers"
PODMAN_RUN = ("containers", "libpod", "runc", "crun")  # in /run
_OVERLAY_REFUSED = 90  # the exit code of a build whose overlay mount failed


class Rooms(str, Enum):
    """Where the layers are kept: on the state folder's disk, or in a tmpfs where that cannot hold them."""

    DISK = "disk"
    MEMORY = "memory"


@dataclass(frozen=True)
class HostLayers:
    """One host's overlay: its upper layer, overlayfs's work folder, and the (empty) folder it is mounted on."""

    upper: Path
    work: Path
    mount: Path


def layers_dir(state: Path) -> Path:
    return state / "layers"


def seed_dir(state: Path) -> Path:
    return layers_dir(state) / "seed"


def host_layers(state: Path, name: str) -> HostLayers:
    folder = layers_dir(state) / name
    return HostLayers(folder / "upper", folder / "work", folder / "mount")


def check_paths(state: Path) -> None:
    """overlayfs's options are a comma-separated list of colon-separated folders: a state folder whose
    path holds either cannot be named in them."""
    if any(mark in str(state) for mark in ",:\\"):
        raise TestbedError(f"the testbed's folder {state} has a ',', ':' or '\\' in its path, which overlayfs "
                           f"cannot take; set UNICORN_ANSIBLE_HOME to a plain path")


def make_seed(state: Path, password: str, mount_memory: Callable[[Path], None]) -> tuple[Rooms, int, int]:
    """Start the seed: the user ``unicorn`` made with the system's own tools as the upper layer of a
    throwaway overlay, in the state folder or, where its filesystem cannot be an upper layer, in a tmpfs
    that ``mount_memory`` mounts on the layers' folder. Returns where the layers are and the user's uid
    and gid."""
    rooms = Rooms.DISK
    done = _build_user(state, password)
    if done.returncode == _OVERLAY_REFUSED:
        mount_memory(layers_dir(state))
        rooms = Rooms.MEMORY
        done = _build_user(state, password)
    if done.returncode == _OVERLAY_REFUSED:
        raise TestbedError(f"the testbed gives each host an overlay of this machine's root, which this kernel "
                           f"refuses: {_last_line(done)} (dmesg says why)")
    if done.returncode != 0:
        raise TestbedError(f"making the testbed's user {USER} failed: {_last_line(done)}")
    uid, gid = (int(number) for number in done.stdout.split()[-2:])
    return rooms, uid, gid


def _build_user(state: Path, password: str) -> subprocess.CompletedProcess[str]:
    seed, scratch = seed_dir(state), layers_dir(state) / "build"
    shutil.rmtree(seed, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    for path in (seed, scratch / "work", scratch / "mount"):
        path.mkdir(parents=True)
    _copy_attributes(Path("/"), seed)
    mount = scratch / "mount"
    script = "\n".join([
        "set -e",
        f"mount -t overlay overlay -o {_overlay_options(seed, scratch / 'work')} {quote(str(mount))} "
        f"|| exit {_OVERLAY_REFUSED}",
        f"mount --rbind /dev {quote(str(mount / 'dev'))}",
        f"mount -t proc proc {quote(str(mount / 'proc'))}",
        f"exec chroot {quote(str(mount))} sh -c "
        + quote(f"id -u {USER} >/dev/null 2>&1 || useradd --no-create-home --home-dir {HOME} --shell /bin/bash "
                 f"{USER}; chpasswd; id -u {USER}; id -g {USER}"),
    ])
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              input=f"{USER}:{password}\n", capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fill_seed(state: Path, owner: tuple[int, int], public_key: str, host_key: Path, hidden: Iterable[str],
              apt_proxy: str | None) -> None:
    """What every host starts with on top of the machine's root: its sudo rule, the login keys for root
    and ``unicorn``, plain shell profiles, the sshd configuration and host key, the apt proxy's address,
    and empty folders where the machine has what hosts must not see (``hidden``, /home, root's keys)."""
    seed = seed_dir(state)
    for path in masked_paths(["/home", "/root/.ssh", *hidden]):
        _mask(seed, path)
    _put(seed, SUDOERS, f"# unicorn-ansible testbed: {USER} may use sudo with its password\n"
                          f"{USER} ALL=(ALL:ALL) ALL\n", 0o440)
    for home in ("/root", HOME):
        _put(seed, f"{home}/.ssh/authorized_keys", public_key, 0o600)
        os.chmod(seed / home.lstrip("/") / ".ssh", 0o700)
        # a plain shell: no pyenv init or the like costing every remote command
        for profile in (".bashrc", ".profile"):
            _put(seed, f"{home}/{profile}", "# unicorn-ansible testbed host\n")
    user_home = seed / HOME.lstrip("/")
    for owned in (user_home, user_home / ".ssh", *(user_home / ".ssh").iterdir(), *user_home.glob(".*")):
        os.chown(owned, *owner)
    os.chmod(user_home, 0o750)
    _put(seed, HOST_KEY, host_key.read_text(), 0o600)
    _put(seed, SSHD_CONFIG, sshd_config())
    if apt_proxy:
        _put(seed, APT_PROXY_CONF, "// unicorn-ansible testbed: this host reaches the machine's apt sources "
                                     "through the testbed's proxy\n"
                                     f'Acquire::http::Proxy "http://{apt_proxy}/";\n'
                                     f'Acquire::https::Proxy "http://{apt_proxy}/";\n')


def masked_paths(paths: Iterable[str]) -> list[str]:
    """The folders to hide, each once: none under another (that one hides it) or under /tmp (a host's /tmp
    is a tmpfs of its own), never / or /usr."""
    kept: list[Path] = []
    for path in sorted({Path(p) for p in paths} - {Path("/"), Path("/usr")}):
        if not path.is_absolute() or any(parent in kept or parent == Path("/tmp") for parent in path.parents):
            continue
        if path != Path("/tmp"):
            kept.append(path)
    return [str(path) for path in kept]


def sshd_config() -> str:
    return "\n".join([
        "# unicorn-ansible testbed host",
        "Port 22",
        f"HostKey {HOST_KEY}",
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


def make_host_layer(state: Path, name: str, address: str) -> HostLayers:
    """A host's upper layer: the seed's copy (owners, modes and overlayfs's marks kept) with the host's own
    name (/etc/hostname, and /etc/hosts resolving it to its address)."""
    layers = host_layers(state, name)
    layers.upper.parent.mkdir(parents=True)
    done = subprocess.run(["cp", "-a", str(seed_dir(state)), str(layers.upper)], capture_output=True, text=True)
    if done.returncode != 0:
        raise TestbedError(f"copying the testbed's seed for {name} failed: {_last_line(done)}")
    for path in (layers.work, layers.mount):
        path.mkdir()
    _put(layers.upper, "/etc/hostname", f"{name}\n")
    _put(layers.upper, "/etc/hosts", etc_hosts(name, address))
    return layers


def etc_hosts(name: str, address: str) -> str:
    """A host's /etc/hosts: its own name resolves to its address, as on a lab host."""
    return f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{address}\t{name}\n"


def shared_container_paths() -> list[str]:
    """podman's folders the hosts share with the machine, where podman is installed. The ones podman (or
    its runtime, where installed) has not made yet are made as they make them, so that every host and the
    machine use the same ones."""
    if not shutil.which("podman"):
        return []
    wanted = [PODMAN_STORAGE, *(f"/run/{name}" for name in PODMAN_RUN if name in ("containers", "libpod")
                                or shutil.which(name))]
    for path in wanted:
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o700, exist_ok=True)
    return wanted


def start_script(state: Path, name: str, cgroups: Sequence[tuple[str, str, str, str]], shared: Sequence[str],
                 command: str) -> str:
    """The shell lines a host's first process runs (in its network, mount and UTS namespaces) before it
    becomes ``command``: its hostname, its overlay, its /proc, /sys (with the machine's cgroup hierarchies,
    for container engines), /dev, /run, /tmp, the shared podman folders; then the overlay becomes /."""
    layers = host_layers(state, name)
    root = str(layers.mount)

    def inside(path: str) -> str:
        return quote(root + path)

    return "\n".join([
        "set -e",
        f"hostname {quote(name)}",
        f"mount -t overlay overlay -o {_overlay_options(layers.upper, layers.work)} {quote(root)}",
        f"mount -t proc proc {inside('/proc')}",
        f"mount -t sysfs sysfs {inside('/sys')}",
        *[f"mkdir -p {inside(target)} && mount -t {kind} -o {quote(options)} {quote(device)} {inside(target)} "
          "|| true" for device, target, kind, options in cgroups],
        f"mount --rbind /dev {inside('/dev')}",
        f"mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {inside('/dev/shm')}",
        f"mount -t tmpfs -o mode=755,nosuid,nodev tmpfs {inside('/run')}",
        f"mkdir -m 755 {inside('/run/sshd')} && mkdir -m 1777 {inside('/run/lock')}",
        *[f"mkdir -p {inside(path)} && mount --bind {quote(path)} {inside(path)}" for path in shared],
        f"mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {inside('/tmp')}",
        f"cd {quote(root)} && pivot_root . . && umount -l . && cd /",
        f"exec {command}",
    ])


def cgroup_mounts(mounts: str = "/proc/self/mounts") -> list[tuple[str, str, str, str]]:
    """The controller's cgroup hierarchies as (device, target, type, options) to mount again in a host
    (``ip netns exec`` gives it a /sys without them), so container runtimes work on hosts; a hierarchy
    that cannot be mounted is left out, never a reason for the host not to start."""
    found = []
    with open(mounts) as table:
        for entry in table:
            device, target, kind, options = entry.split()[:4]
            if target.startswith("/sys/fs/cgroup") and kind in ("tmpfs", "cgroup", "cgroup2"):
                wanted = ",".join(o for o in options.split(",") if o not in ("rw", "relatime", "nosuid", "nodev",
                                                                            "noexec", "seclabel"))
                if kind == "cgroup" and all(o.startswith("name=") for o in wanted.split(",")):
                    wanted = f"none,{wanted}"  # a named hierarchy without controllers
                found.append((device, target, kind, wanted or "defaults"))
    return found


def _overlay_options(upper: Path, work: Path) -> str:
    """The machine's root below, ``upper`` on top (overlayfs allows an upper layer inside the lower one)."""
    return quote(f"lowerdir=/,upperdir={upper},workdir={work}")


def _mask(layer: Path, path: str) -> None:
    """An empty folder at ``path`` that hides what the machine has there."""
    target = layer / path.lstrip("/")
    if target.exists():
        return
    _make_parents(layer, path)
    target.mkdir()
    _copy_attributes(Path(path), target)
    os.setxattr(target, OPAQUE, b"y")


def _put(layer: Path, path: str, text: str, mode: int = 0o644) -> None:
    """A file at ``path`` in ``layer``, its folders made as the machine has them."""
    _make_parents(layer, path)
    write_atomic(layer / path.lstrip("/"), text, mode)


def _make_parents(layer: Path, path: str) -> None:
    """``path``'s folders in ``layer``, each with the mode and owner the machine's has (a folder an upper
    layer has is what the host sees: a 0700 /etc would lock its users out)."""
    current = layer
    for part in Path(path.lstrip("/")).parts[:-1]:
        current = current / part
        if not current.is_dir():
            current.mkdir()
            _copy_attributes(Path("/") / current.relative_to(layer), current)


def _copy_attributes(source: Path, target: Path) -> None:
    try:
        found = source.stat()
    except OSError:
        os.chmod(target, 0o755)
        return
    os.chown(target, found.st_uid, found.st_gid)
    os.chmod(target, found.st_mode & 0o7777)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1].strip() if lines else f"exit {done.returncode}"


def quote(text: str) -> str:
    """``text`` as one word of a shell line."""
    return "'" + text.replace("'", "'\"'\"'") + "'"
