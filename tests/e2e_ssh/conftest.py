"""End-to-end tests over real SSH: a testbed of network-namespace hosts, each with its own sshd and
its own root (an overlay of the machine's: what a test installs on a host stays on that host).

Needs root, iproute2, util-linux, sudo and openssh-server (scripts/test.sh installs them); skipped
without root. Each test module gets its own testbed (bringing one up takes well under a second), in
a home folder of its own, and takes down only that one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from unicorn_ansible.testbed import lab as _testbed

CLI = [sys.executable, "-m", "unicorn_ansible.ui.cli"]
SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e_ssh" in str(item.fspath):
            item.add_marker(pytest.mark.ssh)


class Lab:
    """A testbed plus helpers to write inventories, run the CLI and look into hosts."""

    def __init__(self, bed: _testbed.Testbed, root: Path) -> None:
        self.bed = bed
        self.root = root
        self.home = root / "home"  # the testbed's state and the runs, as a user would have them
        self.vars = dict(os.environ, UNICORN_ANSIBLE_HOME=str(self.home))

    @property
    def hosts(self) -> list[_testbed.TestbedHost]:
        return self.bed.hosts

    @property
    def become_password(self) -> str:
        return Path(self.bed.become_password_file).read_text().strip()

    def host_root(self, name: str) -> Path:
        """A host's /root as the controller sees it (through its sshd: the host's own root is an overlay
        mounted in its own mount namespace)."""
        return self.bed.root_of(name) / "root"

    def inventory(self, name: str, host_vars: dict[str, dict[str, str]] | None = None,
                  group_vars: dict[str, str] | None = None, hosts: list[str] | None = None) -> Path:
        """A YAML inventory of (some of) the testbed's hosts with extra variables."""
        chosen = [h for h in self.hosts if hosts is None or h.name in hosts]
        data = {"all": {"children": {"lab": {
            "hosts": {h.name: {"ansible_host": h.address, "unicorn_address": h.address, "unicorn_netns": h.netns,
                               **(host_vars or {}).get(h.name, {})} for h in chosen},
            "vars": {"ansible_user": "root", "ansible_ssh_private_key_file": self.bed.key,
                     "ansible_python_interpreter": "/usr/bin/python3", "ansible_ssh_common_args": SSH_ARGS,
                     **(group_vars or {})},
        }}}}
        path = self.root / f"{name}.yml"
        path.write_text(json.dumps(data, indent=2))
        return path

    def cli(self, *args: str, check: int | None = None, timeout: float = 300,
            input: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(CLI + list(args), env=self.vars, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, input=input)
        if check is not None:
            assert done.returncode == check, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        return done

    def results(self, run: str) -> dict:
        done = self.cli("results", run, "--json")
        assert done.returncode in (0, 1), done.stderr
        return json.loads(done.stdout)

    def restart_sshd(self, host: str) -> None:
        self.bed.host(host).pid = _testbed.restart(host).pid

    def ssh(self, host: str, command: str, user: str = "root") -> subprocess.CompletedProcess:
        address = self.bed.host(host).address
        return subprocess.run(["ssh", "-i", self.bed.key, *SSH_ARGS.split(), f"{user}@{address}", command],
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the SSH tests need root to create the testbed: run them as root (scripts/test.sh does); "
                    "scripts/test.sh --fast runs the tests that do not")
    root = tmp_path_factory.mktemp("lab")
    previous = os.environ.get("UNICORN_ANSIBLE_HOME")
    os.environ["UNICORN_ANSIBLE_HOME"] = str(root / "home")  # its own home: down() takes down only this testbed
    try:
        yield Lab(_testbed.up(3), root)
    finally:
        _testbed.down()
        if previous is None:
            os.environ.pop("UNICORN_ANSIBLE_HOME", None)
        else:
            os.environ["UNICORN_ANSIBLE_HOME"] = previous


def node(results: dict, name: str) -> dict:
    return next(n for n in results["nodes"] if n["node"] == name)
