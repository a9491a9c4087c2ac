"""A run's SSH settings: its own short control folder, the strategy of site.yml's first play,
and closing the run's masters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unicorn_ansible.compiler.settings import CompileOptions, ansible_settings, start_round, start_strategy
from unicorn_ansible.engine.rundir import RunDir, write_json
from unicorn_ansible.engine.ssh_masters import CONTROL_DIR_ENV, close_masters, control_dir, new_control_dir


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


def test_each_run_has_its_own_short_control_folder(tmp_path: Path) -> None:
    first, second = new_control_dir(), new_control_dir()
    assert first != second
    # ssh's socket path (folder, Ansible's 10-character name, ssh's 17-character temporary suffix) fits in 108 bytes
    assert len(first) + 1 + 10 + 17 < 108
    settings = {env: value for _, _, env, value in ansible_settings(2, CompileOptions(), tmp_path, None, first)}
    assert settings[CONTROL_DIR_ENV] == first
    assert CONTROL_DIR_ENV not in {env for _, _, env, _ in ansible_settings(2, CompileOptions(), tmp_path)}


def test_closing_masters_removes_the_runs_control_folder_and_leaves_others_alone(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    folder = tmp_path / "cp"
    write_json(run.envvars_file, {CONTROL_DIR_ENV: str(folder)})
    assert control_dir(run) == folder
    folder.mkdir(mode=0o700)
    assert close_masters(run) == 0 and not folder.exists()

    shared = tmp_path / "shared"  # a folder others may use: not ours to clean
    shared.mkdir()
    shared.chmod(0o755)
    write_json(run.envvars_file, {CONTROL_DIR_ENV: str(shared)})
    close_masters(run)
    assert shared.exists()

    write_json(run.envvars_file, {"ANSIBLE_FORKS": "5"})  # a run compiled before control folders
    assert control_dir(run) is None and close_masters(run) == 0
    assert os.path.isdir(tmp_path / "run")
