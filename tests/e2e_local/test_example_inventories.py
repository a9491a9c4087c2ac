"""Every example inventory under inventories/ keeps its hosts' work folders in unicorn-ansible's
home folder when UNICORN_ANSIBLE_HOME is set (issue 27): trying the README's examples with the
variable set must leave the user's real ~/.unicorn-ansible untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "unicorn_ansible.ui.cli"]

# inventory (as given to -i) -> the experiment that runs on it and the hosts it has
EXAMPLES = {
    "inventories/examples": ("examples/measure.py", ["probe-a", "probe-b", "probe-c"]),
    "inventories/local/hosts.yml": ("examples/hello.py", ["localhost"]),
}
# the testbed's template: its hosts are SSH hosts with roots of their own (their ~ is not this machine's)
NOT_LOCAL = {"inventories/testbed"}


def test_every_example_inventory_is_covered() -> None:
    found = {f"inventories/{path.name}" for path in (ROOT / "inventories").iterdir() if path.is_dir()}
    covered = {name.split("/")[0] + "/" + name.split("/")[1] for name in EXAMPLES} | NOT_LOCAL
    assert found == covered, "a new inventory under inventories/: add it to EXAMPLES (or NOT_LOCAL) here"


@pytest.mark.parametrize("inventory", sorted(EXAMPLES))
def test_example_inventory_honours_unicorn_ansible_home(inventory: str, tmp_path: Path) -> None:
    experiment, hosts = EXAMPLES[inventory]
    user_home, ua_home = tmp_path / "user", tmp_path / "ua-home"
    user_home.mkdir()
    env = dict(os.environ, HOME=str(user_home), UNICORN_ANSIBLE_HOME=str(ua_home))
    done = subprocess.run(CLI + ["run", str(ROOT / experiment), "-i", str(ROOT / inventory), "--name", "example"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    for host in hosts:
        assert (ua_home / "hosts" / host / "runs").is_dir(), f"{host}'s work folder is not in UNICORN_ANSIBLE_HOME"
    assert not (user_home / ".unicorn-ansible").exists(), "a host work folder was written into ~/.unicorn-ansible"
