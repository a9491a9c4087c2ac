"""The run's closing hint names a command that runs as installed (issue 27)."""

from pathlib import Path

import pytest

from unicorn_ansible.ui.cli import self_command


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
