"""The CLI's exit codes: 1 for a run or trust failure, 2 for a usage mistake only; either way one
line on stderr, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from unicorn_ansible import errors
from unicorn_ansible.ui.cli import cli


@pytest.mark.parametrize(("error", "code"), [
    (errors.RunError, 1), (errors.UntrustedDataError, 1), (errors.TestbedError, 1),
    (errors.UsageError, 2), (errors.ExperimentError, 2), (errors.GraphError, 2), (errors.InventoryError, 2),
])
def test_each_error_exits_with_its_code(error: type[errors.UnicornError], code: int) -> None:
    @click.command("fails")
    def fails() -> None:
        raise error("what went wrong, and how to fix it")

    cli.add_command(fails)
    try:
        done = CliRunner().invoke(cli, ["fails"])
    finally:
        cli.commands.pop("fails")
    assert done.exit_code == code
    assert done.output == "error: what went wrong, and how to fix it\n"


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unicorn_ansible.ui.cli", *args], capture_output=True, text=True,
                          timeout=120, env={"UNICORN_ANSIBLE_HOME": str(home), "PATH": "/usr/bin:/bin"})


def test_an_unreadable_run_exits_1_and_an_unknown_one_2(tmp_path: Path) -> None:
    (tmp_path / "runs" / "broken").mkdir(parents=True)
    (tmp_path / "runs" / "broken" / "run.json").write_text("{")
    broken = _cli(tmp_path, "status", "broken")
    assert broken.returncode == 1 and "no readable run.json" in broken.stderr and "Traceback" not in broken.stderr
    unknown = _cli(tmp_path, "status", "no-such-run")
    assert unknown.returncode == 2 and "no run named no-such-run" in unknown.stderr
