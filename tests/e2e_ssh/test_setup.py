"""The test command's set-up never harms the machine it runs on (issue 27): `.ci/testbed-deps.sh`
(what `scripts/test.sh` runs as root) leaves a running system sshd running and calls no service
manager; the testbed's sshds need nothing of the system's."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SERVICE_MANAGERS = ("systemctl", "service", "invoke-rc.d")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        return connection.recv(64)


@pytest.fixture
def system_sshd(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """A plain sshd of the system's, on a spare port of 127.0.0.1 (the machine's own ssh service is
    never touched)."""
    if os.geteuid() != 0:
        pytest.skip("the set-up runs as root; run this test as root (scripts/test.sh does)")
    privsep = Path("/run/sshd")  # sshd's own privilege-separation folder, which it needs to start
    made = not privsep.exists()
    privsep.mkdir(mode=0o755, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host_key")], check=True)
    port = _free_port()
    (tmp_path / "sshd_config").write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path / 'host_key'}\n"
                                          f"PidFile {tmp_path / 'sshd.pid'}\nUsePAM no\nPasswordAuthentication no\n")
    with open(tmp_path / "sshd.log", "wb") as log:
        process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(tmp_path / "sshd_config")],
                                   stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert _banner(port).startswith(b"SSH-2.0")
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "sshd.log").read_text()
                time.sleep(0.05)
        yield process, port
    finally:
        process.kill()
        process.wait()
        if made:
            privsep.rmdir()


def test_the_set_up_leaves_a_running_system_sshd_running(system_sshd: tuple[subprocess.Popen, int],
                                                        tmp_path: Path) -> None:
    process, port = system_sshd
    # service managers that answer "ssh is active" and record what they are asked
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in SERVICE_MANAGERS:
        (stubs / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {tmp_path / "asked"}\nexit 0\n')
        (stubs / name).chmod(0o755)
    done = subprocess.run(["bash", str(PROJECT / ".ci" / "testbed-deps.sh")], capture_output=True, text=True,
                          env=dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}"), timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    asked = (tmp_path / "asked").read_text() if (tmp_path / "asked").exists() else ""
    assert asked == "", f"the set-up asked a service manager: {asked}"
    assert process.poll() is None and _banner(port).startswith(b"SSH-2.0")
