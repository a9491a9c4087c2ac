"""What the container tests share: the base image .ci/containers.sh imports, a local registry,
a small wheel served over HTTP (there is no public index here), free ports."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

#: made by .ci/containers.sh (debootstrap's bookworm with python3, imported into podman)
BASE_IMAGE = "localhost/unicorn-ansible-test-python:bookworm"
#: the registry's port, trusted over plain HTTP by .ci/containers.sh's registries.conf.d entry
REGISTRY_PORT = 5000
REGISTRY_LOCK = "/tmp/unicorn-ansible-test-registry.lock"
#: the user image the tests push and then pull, as ``<registry address>/...``
USER_IMAGE_PATH = "unicorn-test/python:1"
WHEEL_NAME = "unicorn_probe"


def require_podman() -> None:
    """Skip when podman or the base image is missing (outside CI); in CI that is a failure."""
    ready = shutil.which("podman") and subprocess.run(
        ["podman", "image", "exists", BASE_IMAGE], capture_output=True).returncode == 0
    if ready:
        return
    message = f"podman with the image {BASE_IMAGE} is needed: run .ci/containers.sh as root"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def run_containers(home: Path, run: str, engine: str = "podman") -> list[str]:
    """The names of the run's containers (running or not) the engine knows."""
    run_id = json.loads((home / "runs" / run / "run.json").read_text())["run_id"]
    names = subprocess.run([engine, "ps", "--all", "--format", "{{.Names}}"], capture_output=True, text=True,
                           timeout=120).stdout.split()
    return [name for name in names if name.startswith(f"unicorn-{run_id}-")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(folder: Path, answer: int = 42) -> Path:
    """A pure-Python wheel of the package ``unicorn_probe`` whose ``ANSWER`` is ``answer``."""
    info = f"{WHEEL_NAME}-1.0.dist-info"
    files = {
        f"{WHEEL_NAME}/__init__.py": f"ANSWER = {answer}\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {WHEEL_NAME}\nVersion: 1.0\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "\n".join([_record_line(p, d) for p, d in files.items()] + [f"{info}/RECORD,,", ""])
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{WHEEL_NAME}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[int]:
    """Serve ``folder`` over HTTP on every address; yields the port."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def registry(root: Path) -> Iterator[None]:
    """Debian's docker-registry on every address, port REGISTRY_PORT, storing under ``root``;
    test sessions running at once take turns (the port is fixed)."""
    with open(REGISTRY_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _registry(root):
            yield


@contextlib.contextmanager
def _registry(root: Path) -> Iterator[None]:
    config = root / "registry.yml"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                      f"http:\n  addr: 0.0.0.0:{REGISTRY_PORT}\n")
    with open(root / "registry.log", "wb") as log:
        process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(REGISTRY_PORT, process, root / "registry.log")
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the registry ended: {log.read_text()[-2000:]}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"the registry did not listen on port {port} within {timeout} s")


def push_user_image(address: str) -> str:
    """Push the base image to the registry at ``address`` as the user's image; the host has no
    copy of that name afterwards, so a run pulls it. Returns the image's name."""
    image = f"{address}:{REGISTRY_PORT}/{USER_IMAGE_PATH}"
    podman("push", "--quiet", BASE_IMAGE, image)
    podman("rmi", image, check=False)
    return image


@contextlib.contextmanager
def dockerd(root: Path) -> Iterator[Path]:
    """A Docker daemon of the test's own (its socket, data and state under ``root``; no bridge, no
    iptables rules: host networking only) with the base image loaded; yields an engine command
    (a wrapper script) for the inventory's ``unicorn_container_engine``."""
    if not shutil.which("dockerd"):
        message = "dockerd is needed: run .ci/containers.sh as root"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    root.mkdir(parents=True, exist_ok=True)
    sockets = Path(tempfile.mkdtemp(prefix="ua-dockerd-"))  # a short path: socket paths have 107 bytes at most
    socket_path = sockets / "docker.sock"
    with open(root / "dockerd.log", "wb") as log:
        process = subprocess.Popen(
            ["dockerd", "--host", f"unix://{socket_path}", "--data-root", str(root / "data"),
             "--exec-root", str(sockets / "exec"), "--pidfile", str(root / "docker.pid"), "--iptables=false",
             "--bridge=none", "--ip-masq=false", "--default-ulimit", "nofile=20000:20000",
             "--default-ulimit", "nproc=20000:20000"], stdout=log, stderr=subprocess.STDOUT)
    wrapper = root / "docker-engine"
    wrapper.write_text(f"#!/bin/sh\nexec docker --host unix://{socket_path} \"$@\"\n")
    wrapper.chmod(0o755)
    try:
        _wait_for_docker(wrapper, process, root / "dockerd.log")
        podman("save", "--quiet", "--output", str(root / "base.tar"), BASE_IMAGE)
        loaded = subprocess.run([str(wrapper), "load", "--quiet", "--input", str(root / "base.tar")],
                                capture_output=True, text=True, timeout=300)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        yield wrapper
    finally:
        process.terminate()
        process.wait(timeout=60)
        _unmount_under(root / "data", sockets)  # what dockerd leaves mounted (its data root, a netns)
        shutil.rmtree(root / "data", ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)


def _unmount_under(*folders: Path) -> None:
    with open("/proc/self/mounts") as table:
        targets = [line.split()[1] for line in table]
    for target in reversed(targets):
        if any(target == str(folder) or target.startswith(f"{folder}/") for folder in folders):
            subprocess.run(["umount", "--lazy", target], capture_output=True)


def _wait_for_docker(wrapper: Path, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dockerd ended: {log.read_text()[-2000:]}"
        if subprocess.run([str(wrapper), "version"], capture_output=True).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"dockerd did not answer within {timeout} s: {log.read_text()[-2000:]}")
