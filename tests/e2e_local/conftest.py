"""End-to-end tests on the local machine: real ansible-runner, real ansible-playbook,
local-connection hosts. Each test gets its own home folder (UNICORN_ANSIBLE_HOME: runs, and the
embedded default's local host work folders) and, in inventories made here, its own host work
root (unicorn_remote_root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unicorn_ansible.engine.rundir import RunDir

CLI = [sys.executable, "-m", "unicorn_ansible.ui.cli"]


class Env:
    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.home = home
        self.vars = dict(os.environ, UNICORN_ANSIBLE_HOME=str(self.home))

    def cli(self, *args: str, check: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(CLI + list(args), env=self.vars, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)
        if check is not None:
            assert done.returncode == check, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        return done

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def results(self, run: str) -> dict:
        done = self.cli("results", run, "--json")
        assert done.returncode in (0, 1), done.stderr
        return json.loads(done.stdout)

    def host_dir(self, host: str) -> Path:
        """A local-connection host's work folder (inventories made here put it under the test's folder)."""
        return self.root / "hosts-root" / "hosts" / host

    def default_host_dir(self) -> Path:
        """The embedded default's localhost work folder: in the home folder."""
        return self.home / "hosts" / "localhost"

    def run_dir_on_host(self, host: str, run: str) -> Path:
        run_id = RunDir(self.home / "runs" / run).record()["run_id"]
        return self.host_dir(host) / "runs" / run_id

    def local_inventory(self, hosts: list[str], extra: str = "") -> Path:
        lines = ["[lab]"] + hosts + ["", "[lab:vars]", "ansible_connection=local",
                                     f"ansible_python_interpreter={sys.executable}",
                                     f"unicorn_remote_root={self.root / 'hosts-root'}", extra]
        return self.write("inventory.ini", "\n".join(lines) + "\n")


@pytest.fixture(autouse=True)
def _own_home(isolated_home: Path) -> Path:
    return isolated_home


@pytest.fixture
def env(tmp_path: Path, isolated_home: Path) -> Env:
    return Env(tmp_path, isolated_home)


def node(results: dict, name: str) -> dict:
    return next(n for n in results["nodes"] if n["node"] == name)
