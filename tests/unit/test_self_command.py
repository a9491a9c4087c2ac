"""The run's closing hint names a command that runs as installed (issue 27)."""

from pathlib import Path

import pytest

import unicorn_ansible.inventory as inventory
from unicorn_ansible.ui.cli import self_command


@pytest.fixture(autouse=True)
def _paths_as_set_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH as each test sets it (an earlier test's run may have put its scripts folder on it)."""
    monkeypatch.setattr(inventory, "_path_as_started", None)


def test_an_executable_not_on_path_is_named_by_its_full_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = tmp_path / "venv" / "bin" / "unicorn-ansible"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert self_command(str(exe)) == str(exe.resolve())


def test_the_executable_path_finds_is_named_bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = tmp_path / "unicorn-ansible"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert self_command(str(exe)) == "unicorn-ansible"


def test_a_run_restarted_as_python_m_names_its_venvs_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = tmp_path / "venv" / "bin" / "unicorn-ansible"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setattr("sys.executable", str(exe.with_name("python")))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert self_command("/src/unicorn_ansible/ui/cli.py") == str(exe.resolve())


def test_the_scripts_folder_the_run_puts_on_path_does_not_make_the_name_bare(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the run puts its Python's scripts folder on PATH for ansible-runner; the user's shell has not
    exe = tmp_path / "venv" / "bin" / "unicorn-ansible"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(exe.with_name("python")))
    monkeypatch.setenv("PATH", "/nonexistent")
    inventory.ensure_ansible_on_path()
    assert self_command(str(exe)) == str(exe.resolve())
