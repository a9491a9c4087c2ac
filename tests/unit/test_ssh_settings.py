"""A run's SSH settings: its own short control folder (private, made by us, refused when someone else
made it), the strategy of site.yml's first play, and closing the run's masters."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

from unicorn_ansible.compiler.settings import CompileOptions, ansible_settings, start_round, start_strategy
from unicorn_ansible.engine.rundir import RunDir
from unicorn_ansible.engine.ssh_masters import (
    CONTROL_DIR_VAR,
    close_masters,
    control_dir,
    control_vars,
    own_control_dir,
)
from unicorn_ansible.errors import RunError


@pytest.mark.parametrize("chosen, expected", [(None, "linear"), ("linear", "linear"), ("mitogen_linear", "mitogen_linear"),
                                              ("host_pinned", "host_pinned"), ("mitogen_free", "mitogen_free")])
def test_site_deploys_and_starts_each_host_on_its_own_unless_the_user_chose_a_strategy(chosen, expected) -> None:
    assert start_strategy(CompileOptions(strategy=chosen)) == expected


@pytest.mark.parametrize("options, hosts, most, expected", [
    (CompileOptions(), 10, 1, False),  # every host worked on at once: the first long poll starts them all
    (CompileOptions(), 60, 1, True),  # 50 forks at most by default: the others would wait to start
    (CompileOptions(forks=5), 10, 1, True),
    (CompileOptions(), 10, 2, True),  # a host's second pipeline would wait for its first one's poll
    (CompileOptions(strategy="free"), 60, 2, False),  # the deployment's call starts each pipeline
])
def test_site_starts_in_a_round_of_its_own_only_where_a_poll_would_hold_back_a_start(options, hosts, most,
                                                                                     expected) -> None:
    assert start_round(options, hosts, most) == expected


@pytest.fixture()
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh base for the run's sockets, sticky and writable by all, as /tmp is."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    return folder


def test_each_run_has_its_own_short_control_folder_made_private_by_us(tmp_path: Path, base: Path) -> None:
    first, second = RunDir(tmp_path / "a"), RunDir(tmp_path / "b")
    folder = own_control_dir(first)
    assert folder == control_dir(first) != control_dir(second)
    assert folder.parent == base / f"unicorn-ansible-{os.getuid()}"
    for made in (folder, folder.parent):
        assert made.stat().st_mode & 0o777 == 0o700 and made.stat().st_uid == os.getuid()
    assert own_control_dir(first) == folder  # the next step finds it ours: accepted
    assert control_vars(first) == {CONTROL_DIR_VAR: str(folder)}
    # ssh's socket path (folder, Ansible's 10-character name, ssh's 17-character temporary suffix) fits in 108 bytes
    # under /tmp, whatever the run folder's path
    assert len(f"/tmp/{control_dir(RunDir(Path('/' + 'r' * 200))).relative_to(base)}") + 1 + 10 + 17 < 108
    # no setting names it: each step creates and checks it, then gives it to its play
    settings = {env for _, _, env, _ in ansible_settings(2, CompileOptions(), tmp_path)}
    assert "ANSIBLE_SSH_CONTROL_PATH_DIR" not in settings


@pytest.mark.parametrize("which", ["control folder", "user folder"])
@pytest.mark.parametrize("shape", ["world-writable", "another user's", "a link"])
def test_a_control_folder_someone_else_made_is_refused_in_one_line(tmp_path: Path, base: Path, which: str,
                                                                   shape: str) -> None:
    run = RunDir(tmp_path / "run")
    target = control_dir(run) if which == "control folder" else control_dir(run).parent
    target.parent.mkdir(mode=0o700, exist_ok=True)
    if shape == "a link":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        target.symlink_to(elsewhere)
    else:
        target.mkdir()
        target.chmod(0o777 if shape == "world-writable" else 0o700)
        if shape == "another user's":
            if os.getuid() != 0:
                pytest.skip("making a folder another user's needs root")
            os.chown(target, 65534, 65534)
    with pytest.raises(RunError, match=rf"refusing .* {re.escape(str(target))} .*it must be a folder only you") as err:
        control_vars(run)
    assert "\n" not in str(err.value) and "remove it" in str(err.value)
    assert close_masters(run) == 0 and os.path.lexists(target)  # not ours: left alone


def test_a_base_others_can_write_without_the_sticky_bit_is_refused(tmp_path: Path, base: Path) -> None:
    base.chmod(0o777)
    with pytest.raises(RunError, match="no sticky bit"):
        control_vars(RunDir(tmp_path / "run"))


def test_closing_masters_removes_the_runs_control_folder_and_leaves_others_alone(tmp_path: Path, base: Path) -> None:
    run, other = RunDir(tmp_path / "run"), RunDir(tmp_path / "other")
    folder, kept = own_control_dir(run), own_control_dir(other)
    assert close_masters(run) == 0 and not folder.exists() and kept.exists()
    assert close_masters(run) == 0  # nothing left to close
    assert os.path.isdir(tmp_path / "tmp")
