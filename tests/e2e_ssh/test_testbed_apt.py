"""Testbed hosts each have a root of their own (issue 24): apt requirements run on all hosts at once
with default forks, each host installs into its own package state, and the machine's stays as it was."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from .conftest import Lab, node

DPKG_STATUS = Path("/var/lib/dpkg/status")
SMALL_PACKAGES = ("hello", "sl", "figlet")  # tiny, and not something a test machine has

HELLO = '''
import subprocess
from unicorn_ansible import Experiment, Pipeline, Task

class Installed(Task):
    requirements = ["apt-get install -y --no-install-recommends {package}"]

    def run(self):
        return subprocess.run(["dpkg-query", "-W", "-f=${{Status}}", "{package}"], capture_output=True,
                              text=True).stdout

def experiment(nodes):
    return Experiment().map(Pipeline().then(Installed(name="installed")), nodes.take(len(nodes)))
'''

LIBRARY = '''
from netunicorn.library.tasks.measurements.iperf3 import Iperf3ServerStart, Iperf3ServerStop
from netunicorn.library.tasks.preprocessing.tshark import TsharkCommand
from unicorn_ansible import Experiment, Pipeline

def experiment(nodes):
    # three library tasks, each with an `apt-get install -y` requirement (tshark, iperf3, procps),
    # on every host at once
    pipeline = (Pipeline().then(TsharkCommand(["tshark", "--version"], name="tshark"))
                .then(Iperf3ServerStart(["-p", "15301"], name="iperf"))
                .then(Iperf3ServerStop("iperf", name="iperf-stop")))
    return Experiment().map(pipeline, nodes.take(len(nodes)))
'''


def _not_installed_here() -> str:
    """A small package this machine has not installed but its apt lists know."""
    for package in SMALL_PACKAGES:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        known = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True)
        if "install ok installed" not in status.stdout and known.returncode == 0:
            return package
    pytest.skip(f"no package of {', '.join(SMALL_PACKAGES)} is both known to apt and not installed here "
                "(apt-get update?)")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_apt_requirements_on_three_hosts_at_once_install_on_each_host_and_not_on_the_machine(lab: Lab) -> None:
    package = _not_installed_here()
    before = _digest(DPKG_STATUS)
    (lab.root / "hello.py").write_text(HELLO.format(package=package))
    done = lab.cli("run", "hello.py", "-i", lab.bed.inventory, "--name", "apt-hosts", timeout=600)
    results = lab.results("apt-hosts")
    for host in lab.hosts:
        installed = node(results, host.name)
        assert installed["status"] == "ok", (host.name, installed, done.stderr[-2000:])
        assert installed["tasks"]["installed"] == [{"type": "Success", "value": "install ok installed"}]
        assert lab.ssh(host.name, f"dpkg -s {package}").returncode == 0
        assert (lab.bed.root_of(host.name) / "var/lib/dpkg/info" / f"{package}.list").exists()
    assert subprocess.run(["dpkg", "-s", package], capture_output=True).returncode != 0  # not on the machine
    assert not Path("/var/lib/dpkg/info", f"{package}.list").exists()
    assert _digest(DPKG_STATUS) == before


def test_netunicorn_library_apt_requirements_run_on_all_hosts_at_once(lab: Lab) -> None:
    pytest.importorskip("netunicorn.library", reason="needs netunicorn-library (pip install -e '.[test]')")
    before = _digest(DPKG_STATUS)
    (lab.root / "library_apt.py").write_text(LIBRARY)
    done = lab.cli("run", "library_apt.py", "-i", lab.bed.inventory, "--name", "library-apt", timeout=600)
    assert "Could not get lock" not in done.stdout + done.stderr
    results = lab.results("library-apt")
    for host in lab.hosts:
        ran = node(results, host.name)
        assert ran["status"] == "ok", (host.name, ran.get("error"), done.stderr[-2000:])
        assert "TShark" in str(ran["tasks"]["tshark"][0]["value"])
        assert [result["type"] for result in ran["tasks"]["iperf-stop"]] == ["Success"]
    assert _digest(DPKG_STATUS) == before
