"""Connections (connections/): each inventory connection value has a kind that says how the run
reaches the host, whether its tasks reach the flag store, and what a step needs for it; a run whose
pipelines use flags on a connection that cannot reach the store is refused at prepare, in one line."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from unicorn_ansible import Experiment, FlagValues, Pipeline, SetFlagTask, Task, get_flag
from unicorn_ansible.compiler.compile import compile_experiment
from unicorn_ansible.compiler.flag_use import uses_flags
from unicorn_ansible.connections import (
    Docker,
    HostConnections,
    Local,
    Other,
    Paramiko,
    Podman,
    Ssh,
    connection_named,
)
from unicorn_ansible.engine.flag_server import FlagReach, new_endpoint
from unicorn_ansible.engine.rundir import RunDir
from unicorn_ansible.engine.ssh_masters import CONTROL_DIR_VAR
from unicorn_ansible.errors import ExperimentError
from unicorn_ansible.inventory import Inventory
from unicorn_ansible.model.nodes import Node


class ReadsFlag(Task):
    def run(self) -> object:
        return get_flag("go")


class ImportsFlagWhenRun(Task):
    def run(self) -> object:
        from unicorn_ansible import increment_flag

        return increment_flag("n")


class Plain(Task):
    def run(self) -> str:
        return "flag"  # a word is not a use


@pytest.mark.parametrize("value, kind", [
    ("", Ssh), ("ssh", Ssh), ("smart", Ssh), ("ansible.builtin.ssh", Ssh),
    ("local", Local), ("ansible.builtin.local", Local),
    ("paramiko", Paramiko), ("paramiko_ssh", Paramiko), ("ansible.builtin.paramiko_ssh", Paramiko),
    ("docker", Docker), ("community.docker.docker", Docker), ("community.docker.docker_api", Docker),
    ("podman", Podman), ("containers.podman.podman", Podman),
    ("winrm", Other), ("community.general.lxd", Other),
])
def test_each_connection_value_has_its_kind(value: str, kind: type) -> None:
    assert type(connection_named(value)) is kind


def test_only_local_and_ssh_reach_the_flag_store() -> None:
    reach = {kind: connection_named(name).flag_reach for kind, name in
             [("local", "local"), ("ssh", "ssh"), ("paramiko", "paramiko"), ("docker", "docker"),
              ("podman", "podman"), ("other", "winrm")]}
    assert reach == {"local": FlagReach.SOCKET, "ssh": FlagReach.TUNNEL, "paramiko": FlagReach.NONE,
                     "docker": FlagReach.NONE, "podman": FlagReach.NONE, "other": FlagReach.NONE}


def test_the_runs_settings_and_step_variables_come_from_the_kinds_its_hosts_use(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)
    run, flags = RunDir(tmp_path / "run"), new_endpoint(tmp_path)
    local = HostConnections.of(Inventory([], {"localhost": {"ansible_connection": "local"}}), ["localhost"])
    assert local.ansible_settings(flags) == [] and local.step_vars(run, tunnel=True) == {}
    mixed = HostConnections.of(Inventory(["lab"], {"h1": {}, "h2": {"ansible_connection": "paramiko"}}), ["h1", "h2"])
    (setting,) = mixed.ansible_settings(flags)
    assert setting[2] == "ANSIBLE_SSH_ARGS" and f"RemoteForward=127.0.0.1:{flags.port} {flags.socket}" in setting[3]
    with_tunnel, without = mixed.step_vars(run, tunnel=True), mixed.step_vars(run, tunnel=False)
    assert set(with_tunnel) == {CONTROL_DIR_VAR} and Path(with_tunnel[CONTROL_DIR_VAR]).is_dir()
    assert "RemoteForward" not in without["ansible_ssh_args"] and "ControlPersist" in without["ansible_ssh_args"]
    assert mixed.close(run) == 0 and not Path(with_tunnel[CONTROL_DIR_VAR]).exists()


def test_a_pipelines_use_of_flags_is_read_from_its_pickle() -> None:
    def pickled(task: Task) -> bytes:
        return Experiment().append(Node("h1"), Pipeline().then(task))[0].pipeline

    assert uses_flags(pickled(ReadsFlag(name="reads")))
    assert uses_flags(pickled(ImportsFlagWhenRun(name="imports")))
    assert uses_flags(pickled(SetFlagTask("go", FlagValues(int_value=1), name="sets")))
    assert not uses_flags(pickled(Plain(name="plain")))
    netunicorn_flags = pytest.importorskip("netunicorn.library.tasks.flags")
    types = pytest.importorskip("netunicorn.base.types")
    assert uses_flags(pickled(netunicorn_flags.SetFlagTask("go", types.FlagValues(int_value=1))))


@pytest.mark.parametrize("connection", ["paramiko", "community.docker.docker", "containers.podman.podman", "winrm"])
def test_flags_on_a_connection_that_cannot_reach_the_store_are_refused_at_prepare_in_one_line(
        tmp_path: Path, connection: str) -> None:
    inventory = Inventory(["lab"], {"h1": {}, "h2": {"ansible_connection": connection}})
    experiment = Experiment().append(Node("h1"), Pipeline().then(ReadsFlag(name="reads")))
    experiment.append(Node("h2"), Pipeline().then(ReadsFlag(name="reads")))
    with pytest.raises(ExperimentError) as refused:
        compile_experiment(experiment, inventory, tmp_path / "run", "refused")
    message = str(refused.value)
    assert "\n" not in message and "node h2 uses flags" in message and f"({connection})" in message
    assert "ansible_connection=ssh" in message or "ssh and local" in message
    assert not (tmp_path / "run").exists()  # refused before anything was written
    # the same hosts without flags compile
    plain = Experiment().append(Node("h1"), Pipeline().then(Plain(name="plain")))
    plain.append(Node("h2"), Pipeline().then(Plain(name="plain")))
    compile_experiment(plain, inventory, tmp_path / "run", "plain")
