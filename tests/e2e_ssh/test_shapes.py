"""Experiments as people write them, over SSH to hosts that have none of the user's files, no
PYTHONPATH and no controller environment; every run starts from another folder than the
experiment's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..shapes import (
    MISSING_IN_RUN,
    MISSING_IN_RUN_FAILURE,
    MISSING_MODULE,
    REFUSED_EXPERIMENT,
    SCRIPT,
    SHAPES,
    build_wheel,
    check_editable,
    check_node,
    run_editable,
    run_notebook,
    write_experiments,
)
from .conftest import Lab, node

HOSTS = ["h1", "h2"]
WHEEL_ON_HOST = "/root/wheels/tinylib-1.0-py3-none-any.whl"  # each host's own /root


@pytest.fixture(scope="module")
def folder(lab: Lab) -> Path:
    wheel = build_wheel(lab.root / "wheels")
    for host in HOSTS:
        (lab.host_root(host) / "wheels").mkdir(parents=True, exist_ok=True)
        shutil.copy(wheel, lab.host_root(host) / "wheels" / wheel.name)
    return write_experiments(lab.root / "experiments", HOSTS, WHEEL_ON_HOST)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_runs_on_hosts_without_the_users_files(lab: Lab, folder: Path, shape: str) -> None:
    inventory = lab.inventory("shapes", hosts=HOSTS)
    done = lab.cli("run", str(folder / shape), "-i", str(inventory), "--name", f"shape-{shape[:-3]}", "--json")
    assert done.returncode == 0, done.stderr
    for host in HOSTS:
        check_node(node(json.loads(done.stdout), host))


def test_compile_then_plain_ansible_playbook(lab: Lab, folder: Path) -> None:
    inventory = lab.inventory("compiled", hosts=["h1"])
    out = lab.root / "compiled"
    lab.cli("compile", str(folder / "function.py"), "-i", str(inventory), "-o", str(out), check=0)
    played = subprocess.run(["ansible-playbook", "-i", str(inventory), "site.yml"], cwd=out / "project",
                            capture_output=True, text=True, timeout=300,
                            env=dict(lab.vars, PATH=f"{Path(sys.executable).parent}:{lab.vars['PATH']}"))
    assert played.returncode == 0, played.stdout[-3000:]
    check_node(node(lab.results(str(out)), "h1"))


def test_a_refused_result_then_trust(lab: Lab) -> None:
    exp = lab.root / "refused.py"
    exp.write_text(textwrap.dedent(REFUSED_EXPERIMENT))
    lab.cli("run", str(exp), "-i", str(lab.inventory("refused", hosts=["h1"])), "--name", "refused", check=0)
    loaded = node(lab.results("refused"), "h1")
    assert loaded["status"] == "ok" and loaded["tasks"]["after"] == [{"type": "Success", "value": {"rtt": 1.5}}]
    assert loaded["tasks"]["namespace"][0]["type"] == "Refused"
    trusted = json.loads(lab.cli("results", "refused", "--trust", "--json", check=0).stdout)
    assert node(trusted, "h1")["tasks"]["namespace"] == [{"type": "Success", "value": "namespace(rtt=2.5)"}]


def test_a_module_the_host_cannot_import_names_the_task_and_the_fix(lab: Lab) -> None:
    folder = lab.root / "missing"
    folder.mkdir()
    for name, text in MISSING_MODULE.items():
        (folder / name).write_text(textwrap.dedent(text))
    done = lab.cli("run", str(folder / "exp.py"), "-i", str(lab.inventory("missing", hosts=["h1"])),
                   "--name", "missing", "--json", check=1)
    failed = node(json.loads(done.stdout), "h1")
    assert failed["status"] == "execution_failed"
    assert "module jinja2 is not importable on this host and task(s) render need it" in failed["error"]
    assert "requirements = ['pip install Jinja2']" in failed["error"]


def test_a_scripts_main_module_with_the_client(lab: Lab, folder: Path) -> None:
    script = folder / "script.py"
    script.write_text(textwrap.dedent(SCRIPT).replace('"bare-a"', '"h1"'))
    done = subprocess.run([sys.executable, str(script), str(lab.inventory("script", hosts=["h1"]))], cwd=lab.root,
                          env=lab.vars, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"made": ["Sample", 5], "read": 6}


def test_classes_defined_in_notebook_cells_with_the_client(lab: Lab) -> None:
    pytest.importorskip("IPython")
    assert run_notebook(lab.inventory("notebook", hosts=["h1"]), "h1", lab.root, lab.vars) == ["Point", 1, 2, 3]


def test_the_users_package_installed_editable_travels_by_value(lab: Lab) -> None:
    root = lab.root / "editable"
    root.mkdir()
    check_editable(node(run_editable(root, lab.inventory("editable", hosts=["h1"]), lab.vars), "h1")["tasks"])


def test_an_installed_package_imported_in_run_names_its_requirement(lab: Lab) -> None:
    pytest.importorskip("dateutil")
    exp = lab.root / "dated.py"
    exp.write_text(textwrap.dedent(MISSING_IN_RUN))
    done = lab.cli("run", str(exp), "-i", str(lab.inventory("dated", hosts=["h1"])), "--name", "dated", "--json",
                   check=1)
    assert node(json.loads(done.stdout), "h1")["tasks"]["dated"] == [{"type": "Failure",
                                                                      "value": MISSING_IN_RUN_FAILURE}]
