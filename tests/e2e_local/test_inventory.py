"""Inventories become node pools: every form Ansible reads, groups, host vars, no secrets."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from unicorn_ansible import Architecture, InventoryError
from unicorn_ansible.inventory import load_inventory

SECRET = "s3cr3t-value-never-to-leak"

INI = f"""
[servers]
srv1 ansible_host=10.77.0.11 role=server

[clients]
cli1 ansible_host=10.77.0.12 peer=10.77.0.11 unicorn_architecture=linux/arm64
cli2 ansible_host=10.77.0.13 peer=10.77.0.11

[clients:vars]
ansible_become_password={SECRET}
ansible_ssh_pass={SECRET}
rate=10mbit
"""

YAML = f"""
all:
  children:
    servers:
      hosts:
        srv1: {{ansible_host: 10.77.0.11, role: server}}
    clients:
      hosts:
        cli1: {{ansible_host: 10.77.0.12, peer: 10.77.0.11, unicorn_architecture: linux/arm64}}
        cli2: {{ansible_host: 10.77.0.13, peer: 10.77.0.11}}
      vars:
        ansible_become_password: {SECRET}
        ansible_ssh_pass: {SECRET}
        rate: 10mbit
"""


def _directory(root: Path) -> Path:
    folder = root / "inventory-dir"
    (folder / "group_vars").mkdir(parents=True)
    (folder / "host_vars").mkdir()
    # named "hosts", not hosts.ini: ansible-core 2.18 skips *.ini files in inventory folders
    (folder / "hosts").write_text("[servers]\nsrv1\n\n[clients]\ncli1\ncli2\n")
    (folder / "group_vars" / "clients.yml").write_text(
        f"ansible_become_password: {SECRET}\nansible_ssh_pass: {SECRET}\nrate: 10mbit\npeer: 10.77.0.11\n")
    (folder / "host_vars" / "srv1.yml").write_text("ansible_host: 10.77.0.11\nrole: server\n")
    (folder / "host_vars" / "cli1.yml").write_text("ansible_host: 10.77.0.12\nunicorn_architecture: linux/arm64\n")
    (folder / "host_vars" / "cli2.yml").write_text("ansible_host: 10.77.0.13\n")
    return folder


def _script(root: Path) -> Path:
    data = {
        "_meta": {"hostvars": {
            "srv1": {"ansible_host": "10.77.0.11", "role": "server"},
            "cli1": {"ansible_host": "10.77.0.12", "peer": "10.77.0.11", "unicorn_architecture": "linux/arm64"},
            "cli2": {"ansible_host": "10.77.0.13", "peer": "10.77.0.11"},
        }},
        "servers": {"hosts": ["srv1"]},
        "clients": {"hosts": ["cli1", "cli2"],
                    "vars": {"ansible_become_password": SECRET, "ansible_ssh_pass": SECRET, "rate": "10mbit"}},
    }
    path = root / "dynamic.py"
    path.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"print(json.dumps({data!r}) if '--list' in sys.argv else '{{}}')\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _pool(source: Path) -> dict:
    pool = load_inventory([str(source)]).nodes()
    return {node.name: (node.architecture, {k: v for k, v in node.properties.items()
                                             if not k.startswith("inventory_") and k not in ("playbook_dir",)})
            for node in pool.flatten()}


@pytest.fixture
def sources(tmp_path: Path) -> dict:
    ini = tmp_path / "hosts.ini"
    ini.write_text(INI)
    yml = tmp_path / "hosts.yml"
    yml.write_text(YAML)
    return {"ini": ini, "yaml": yml, "directory": _directory(tmp_path), "script": _script(tmp_path)}


def test_every_inventory_form_gives_the_same_node_pool(sources: dict) -> None:
    pools = {form: _pool(path) for form, path in sources.items()}
    reference = pools["ini"]
    assert set(reference) == {"srv1", "cli1", "cli2"}
    for form, pool in pools.items():
        assert pool == reference, form
    architecture, properties = reference["cli1"]
    assert architecture is Architecture.LINUX_ARM64
    assert properties["peer"] == "10.77.0.11" and properties["rate"] == "10mbit"
    assert properties["groups"] == ["clients"]
    assert reference["srv1"][0] is Architecture.UNKNOWN


def test_pools_filter_by_group_and_secrets_never_become_properties(sources: dict) -> None:
    pool = load_inventory([str(sources["ini"])]).nodes()
    clients = pool.filter(lambda node: "clients" in node["groups"])
    assert [node.name for node in clients] == ["cli1", "cli2"]
    for node in pool.flatten():
        assert SECRET not in json.dumps(node.properties)
        assert node["ansible_become_password"] is None and node["ansible_ssh_pass"] is None


def test_vaulted_values_are_kept_out(tmp_path: Path) -> None:
    vaulted = "$ANSIBLE_VAULT;1.1;AES256\n          3133\n"
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    h1:\n      api_key: !vault |\n" + "".join(f"        {line}\n" for line in vaulted.splitlines())
        + "      plain: visible\n")
    [node] = load_inventory([str(tmp_path / "hosts.yml")]).nodes().flatten()
    assert node["plain"] == "visible" and node["api_key"] is None


def test_the_cli_lists_nodes_as_json(sources: dict, tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "unicorn_ansible.ui.cli", "nodes", "-i", str(sources["yaml"]), "--json"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, UNICORN_ANSIBLE_HOME=str(tmp_path / "home")))
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [entry["name"] for entry in listed] == ["srv1", "cli1", "cli2"]
    assert SECRET not in done.stdout


def test_an_empty_inventory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.ini").write_text("# nothing here\n")
    with pytest.raises(InventoryError, match="no hosts"):
        load_inventory([str(tmp_path / "empty.ini")])


def test_the_embedded_default_is_a_real_inventory_file_ansible_reads_alike() -> None:
    from unicorn_ansible.inventory import local_inventory_file

    default = load_inventory()
    assert default.is_default and list(default.hostvars) == ["localhost"]
    [node] = default.nodes().flatten()
    assert node["ansible_connection"] == "local" and node.architecture is not Architecture.UNKNOWN
    read_by_ansible = load_inventory([str(local_inventory_file())])
    assert read_by_ansible.hostvars["localhost"]["ansible_connection"] == "local"
    rendered = read_by_ansible.hostvars["localhost"]["ansible_python_interpreter"]  # Ansible renders the template
    assert Path(rendered).resolve() == Path(node["ansible_python_interpreter"]).resolve() == Path(sys.executable).resolve()


def test_the_example_lab_has_groups_and_host_vars_and_compiles(tmp_path: Path) -> None:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    lab = load_inventory([str(root / "inventories" / "examples")])
    pool = lab.nodes()
    assert [node.name for node in pool.filter(lambda node: "probes" in node["groups"])] == ["probe-a", "probe-b",
                                                                                           "probe-c"]
    targets = {node.name: node["target"] for node in pool.flatten()}
    assert targets == {"probe-a": "localhost", "probe-b": "127.0.0.1", "probe-c": "localhost"}  # host var wins
    done = subprocess.run([sys.executable, "-m", "unicorn_ansible.ui.cli", "compile", str(root / "examples" / "measure.py"),
                           "-i", str(root / "inventories" / "examples"), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, UNICORN_ANSIBLE_HOME=str(tmp_path / "home")))
    assert done.returncode == 0, done.stderr
    assert "compiled 3 node(s)" in done.stdout


def test_templated_host_vars_reach_nodes_as_ansible_renders_them(tmp_path: Path) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts").write_text("[lab]\nh1 ansible_host=10.77.0.11\nh2 ansible_host=10.77.0.12\n")
    (tmp_path / "group_vars" / "lab.yml").write_text(
        "ansible_connection: local\n"
        "peer: \"{{ hostvars['h2']['ansible_host'] }}\"\n"
        "members: \"{{ groups['lab'] | join(',') }}\"\n"
        "nested: {me: \"{{ inventory_hostname }}\"}\n"
        "api_token: \"{{ 'never-rendered' }}\"\n")
    pool = {node.name: node for node in load_inventory([str(tmp_path)]).nodes().flatten()}
    assert pool["h1"]["peer"] == pool["h2"]["peer"] == "10.77.0.12"
    assert pool["h1"]["members"] == "h1,h2" and pool["h2"]["nested"] == {"me": "h2"}
    assert "api_token" not in pool["h1"].properties
    (tmp_path / "group_vars" / "lab.yml").write_text("broken: \"{{ no_such_variable }}\"\n")
    with pytest.raises(InventoryError, match="inventory variable broken of host h[12] cannot be rendered: .*no_such"):
        load_inventory([str(tmp_path)])


def test_templated_values_that_use_a_secret_are_secrets_never_rendered(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_PW_ENV", "S3CRET-env-value")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts").write_text("[lab]\nh1\nh2\n")
    (tmp_path / "group_vars" / "lab.yml").write_text(
        "ansible_connection: local\n"
        "db_password: S3CRET-db-value\n"
        "db_url: \"postgres://u:{{ db_password }}@db\"\n"
        "dsn: \"{{ hostvars['h2']['db_url'] }}\"\n"
        "from_env: \"{{ lookup('env', 'LAB_PW_ENV') }}\"\n"
        "spelled: \"{{ lookup('vars', 'db_' ~ 'pa' ~ 'ssword') }}\"\n"  # no secret name in it: its rendering has one
        "peer: \"{{ groups['lab'] | join(',') }}\"\n")
    inventory = load_inventory([str(tmp_path)])
    node = inventory.nodes().flatten()[0]
    assert node["peer"] == "h1,h2"
    assert {"db_password", "db_url", "dsn", "from_env", "spelled"}.isdisjoint(node.properties)
    snapshot = json.dumps(inventory.snapshot(["h1", "h2"]))
    assert "S3CRET" not in snapshot and "S3CRET" not in repr(node.properties)


def test_a_hanging_inventory_script_is_stopped_with_a_message_and_its_processes_with_it(tmp_path: Path) -> None:
    import subprocess

    marker = tmp_path / "sleeper.pid"
    script = tmp_path / "hangs.sh"
    script.write_text(f"#!/bin/sh\nsleep 600 &\necho $! > {marker}\nwait\n")
    script.chmod(0o700)
    done = subprocess.run([sys.executable, "-m", "unicorn_ansible.ui.cli", "nodes", "-i", str(script)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, UNICORN_ANSIBLE_HOME=str(tmp_path / "home"),
                                   UNICORN_ANSIBLE_INVENTORY_TIMEOUT="3"))
    assert done.returncode != 0
    error = done.stderr.strip().splitlines()[-1]
    assert "took over 3 s and was stopped" in error and "UNICORN_ANSIBLE_INVENTORY_TIMEOUT" in error, done.stderr
    assert "Traceback" not in done.stderr
    sleeper = int(marker.read_text())
    assert not Path(f"/proc/{sleeper}").exists() or "Z" in Path(f"/proc/{sleeper}/stat").read_text().split()[2]
