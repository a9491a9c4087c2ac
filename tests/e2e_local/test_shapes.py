"""Experiments as people write them, on local hosts that have none of the user's files: the
host's Python is the system's (/usr/bin/python3: no controller environment, no PYTHONPATH)
and every run starts from another folder than the experiment's."""

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
from .conftest import Env, node

BARE_PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(
    not Path(BARE_PYTHON).exists() or subprocess.run(
        [BARE_PYTHON, "-c", f"import sys; sys.exit(sys.version_info[:2] != {tuple(sys.version_info[:2])})"]
    ).returncode != 0, reason="needs a system Python of the controller's version")


def bare_inventory(env: Env, hosts: list[str]) -> Path:
    """Local hosts running the system Python: they can import nothing of the controller's."""
    lines = ["[lab]"] + hosts + ["", "[lab:vars]", "ansible_connection=local",
                                 f"ansible_python_interpreter={BARE_PYTHON}",
                                 f"unicorn_remote_root={env.root / 'hosts-root'}"]
    return env.write("bare.ini", "\n".join(lines) + "\n")


@pytest.fixture
def folder(env: Env) -> Path:
    wheel = build_wheel(env.root / "wheels")
    return write_experiments(env.root / "experiments", ["bare-a"], str(wheel))


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_runs_on_a_host_without_the_users_files(env: Env, folder: Path, shape: str) -> None:
    inventory = bare_inventory(env, ["bare-a"])
    done = env.cli("run", str(folder / shape), "-i", str(inventory), "--name", "shape", "--json")
    assert done.returncode == 0, done.stderr
    check_node(node(json.loads(done.stdout), "bare-a"))


def test_compile_then_plain_ansible_playbook(env: Env, folder: Path) -> None:
    inventory = bare_inventory(env, ["bare-a"])
    out = env.root / "compiled"
    env.cli("compile", str(folder / "function.py"), "-i", str(inventory), "-o", str(out), check=0)
    shutil.rmtree(folder)  # the run folder is all a run needs
    played = subprocess.run(["ansible-playbook", "-i", str(inventory), "site.yml"], cwd=out / "project",
                            capture_output=True, text=True, timeout=300,
                            env=dict(env.vars, PATH=f"{Path(sys.executable).parent}:{env.vars['PATH']}"))
    assert played.returncode == 0, played.stdout[-3000:]
    check_node(node(env.results(str(out)), "bare-a"))


def test_a_refused_result_is_refused_alone_then_loaded_with_trust(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = bare_inventory(env, ["bare-a"])
    exp = env.write("refused.py", textwrap.dedent(REFUSED_EXPERIMENT))
    env.cli("run", str(exp), "-i", str(inventory), "--name", "refused", check=0)
    loaded = node(env.results("refused"), "bare-a")
    assert loaded["status"] == "ok" and loaded["error"] is None
    assert loaded["tasks"]["plain"] == loaded["tasks"]["after"] == [{"type": "Success", "value": {"rtt": 1.5}}]
    refused = loaded["tasks"]["namespace"][0]
    # cloudpickle sends the class as cloudpickle's _builtin_type("SimpleNamespace"), like scapy's packets
    assert refused["type"] == "Refused" and refused["refers_to"] == "cloudpickle.cloudpickle._builtin_type"
    assert refused["returned"] == "Success" and "unicorn-ansible results refused --trust" in refused["value"]
    table = env.cli("results", "refused", check=0).stdout
    assert "<Refused Success: refers to cloudpickle.cloudpickle._builtin_type" in table
    env.cli("report", "refused", "-o", str(env.root / "refused.html"), check=0)
    html = (env.root / "refused.html").read_text()
    # shown apart from a task's own failures
    assert '<div class="refused">refused: the result refers to cloudpickle.cloudpickle._builtin_type' in html
    assert '<div class="failure">refused' not in html
    trusted = env.cli("results", "refused", "--trust", "--json", check=0)
    assert "loaded with --trust" in trusted.stderr
    data = json.loads(trusted.stdout)
    assert data["trusted"] is True
    assert node(data, "bare-a")["tasks"]["namespace"] == [{"type": "Success", "value": "namespace(rtt=2.5)"}]

    import unicorn_ansible

    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(env.home))
    run_dir = env.home / "runs" / "refused"
    kept = unicorn_ansible.load_results(run_dir)["bare-a"].tasks["namespace"][0]
    assert isinstance(kept, unicorn_ansible.Refused) and not unicorn_ansible.is_successful(kept)
    full = unicorn_ansible.load_results(run_dir, trust=True)
    assert full.trusted and full["bare-a"].tasks["namespace"][0].unwrap().rtt == 2.5
    client = unicorn_ansible.Client(inventory=str(inventory), trust_results=True)
    outcome = client.get_experiment_status("refused").execution_result[0]
    assert outcome.result[0].unwrap()["namespace"][0].unwrap().rtt == 2.5


UNPICKLABLE = {
    "conn.py": """
        import socket
        sock = socket.socket()

        def send(data):
            return sock.send(data)
    """,
    "exp.py": """
        from unicorn_ansible import Experiment, Pipeline, Task
        import conn

        class Send(Task):
            def run(self):
                return conn.send(b"x")

        def experiment(nodes):
            return Experiment().map(Pipeline([Send(name="send")]), nodes.take(1))
    """,
}


def test_a_module_that_cannot_be_pickled_is_a_one_line_error(env: Env) -> None:
    for name, text in UNPICKLABLE.items():
        env.write(name, textwrap.dedent(text))
    done = env.cli("run", str(env.root / "exp.py"), "--name", "unpicklable", check=2)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "task send" in lines[0] and "conn.sock (a socket) cannot be pickled" in lines[0]
    assert json.loads(env.cli("list", "--json", check=0).stdout) == []


C_OBJECT_IN_THE_EXPERIMENT = """
    import threading
    from unicorn_ansible import Experiment, Pipeline, Task

    LOCK = threading.Lock()  # an object of a C extension, in the experiment file itself

    class Locked(Task):
        def run(self):
            with LOCK:
                return 1

    def experiment(nodes):
        return Experiment().map(Pipeline([Locked(name="locked")]), nodes.take(1))
"""


def test_an_unpicklable_object_of_the_experiment_file_is_a_one_line_error(env: Env) -> None:
    """The experiment file's own module-level object, in the def experiment(nodes) shape (netunicorn
    installed: its scan of the pipeline once failed first, with the bare TypeError)."""
    exp = env.write("lockexp.py", textwrap.dedent(C_OBJECT_IN_THE_EXPERIMENT))
    done = env.cli("run", str(exp), "--name", "locked", check=2)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "task locked cannot be sent to its host: lockexp.LOCK (a lock) cannot be pickled" in lines[0]
    assert json.loads(env.cli("list", "--json", check=0).stdout) == []
    assert not (env.home / "runs" / "locked").exists()


def test_a_module_the_host_cannot_import_names_the_task_and_the_fix(env: Env) -> None:
    for name, text in MISSING_MODULE.items():
        env.write(name, textwrap.dedent(text))
    done = env.cli("run", str(env.root / "exp.py"), "-i", str(bare_inventory(env, ["bare-a"])), "--name", "missing",
                   "--json", check=1)
    failed = node(json.loads(done.stdout), "bare-a")
    assert failed["status"] == "execution_failed"
    assert ("module jinja2 is not importable on this host and task(s) render need it; install it with a "
            "requirement of that task: requirements = ['pip install Jinja2']") in failed["error"]


def test_a_scripts_main_module_with_the_client(env: Env, folder: Path) -> None:
    script = folder / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run([sys.executable, str(script), str(bare_inventory(env, ["bare-a"]))], cwd=env.root,
                          env=env.vars, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"made": ["Sample", 5], "read": 6}


def test_classes_defined_in_notebook_cells_with_the_client(env: Env) -> None:
    pytest.importorskip("IPython")
    assert run_notebook(bare_inventory(env, ["bare-a"]), "bare-a", env.root, env.vars) == ["Point", 1, 2, 3]


def test_the_users_package_installed_editable_travels_by_value(env: Env) -> None:
    done = run_editable(env.root, bare_inventory(env, ["bare-a"]), env.vars)
    check_editable(node(done, "bare-a")["tasks"])


def test_an_installed_package_imported_in_run_names_its_requirement(env: Env) -> None:
    pytest.importorskip("dateutil")
    exp = env.write("dated.py", textwrap.dedent(MISSING_IN_RUN))
    done = env.cli("run", str(exp), "-i", str(bare_inventory(env, ["bare-a"])), "--name", "dated", "--json", check=1)
    assert node(json.loads(done.stdout), "bare-a")["tasks"]["dated"] == [{"type": "Failure",
                                                                          "value": MISSING_IN_RUN_FAILURE}]
