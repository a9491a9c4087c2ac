"""What travels to hosts: the user's code by value, installed packages by reference, named per task."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cloudpickle
import pytest

from unicorn_ansible import (
    Experiment,
    ExperimentError,
    Node,
    Pipeline,
    Refused,
    Success,
    is_successful,
)
from unicorn_ansible.model.travel import users_modules
from unicorn_ansible.results.load import result_to_json

PACKAGE = {
    "cyc/__init__.py": "",
    "cyc/a.py": "from cyc import b\n\ndef fa():\n    return 'a' + b.fb()\n",
    "cyc/b.py": "from cyc import a\nimport jinja2\n\ndef fb():\n    return 'b'\n",
    "cyc/tasks.py": textwrap.dedent("""
        from unicorn_ansible import Task
        from cyc import a

        class UsesA(Task):
            def run(self):
                return a.fa()
    """),
}


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, text in PACKAGE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name == "cyc" or name.startswith("cyc.")]:
        del sys.modules[name]


def test_modules_that_import_each_other_travel_by_value_and_installed_ones_are_listed(package: Path) -> None:
    from cyc.tasks import UsesA

    assert {"cyc", "cyc.a", "cyc.b", "cyc.tasks"} <= {m.__name__ for m in users_modules()}
    assert not {"jinja2", "pytest", "unicorn_ansible", "json"} & {m.__name__ for m in users_modules()}
    deployment = Experiment().append(Node("n1", {}), Pipeline([UsesA(name="uses-a")]))[0]
    assert deployment.imports == {"jinja2": {"tasks": ["uses-a"], "install": "pip install Jinja2"}}
    # a Python without the package's folder on its path runs the task
    loader = "import pickle, sys; print(pickle.loads(sys.stdin.buffer.read()).tasks[0][0].run())"
    done = subprocess.run([sys.executable, "-c", loader], input=deployment.pipeline, capture_output=True, cwd="/")
    assert done.stdout.strip() == b"ab", done.stderr


def test_modules_imported_when_a_task_runs_are_importable_on_the_host_only(package: Path) -> None:
    (package / "cyc" / "late.py").write_text(textwrap.dedent("""
        from unicorn_ansible import Task

        class Late(Task):
            def run(self):
                from cyc.a import fa  # imported when it runs, not when the module loads
                import cyc.b
                return fa() + cyc.b.fb()
    """))
    from cyc.late import Late

    pipeline = Experiment().append(Node("n1", {}), Pipeline([Late(name="late")]))[0].pipeline
    loader = ("import os, pickle, sys; task = pickle.loads(sys.stdin.buffer.read()).tasks[0][0]; "
              "print(sorted(name for name in sys.modules if name.startswith('cyc'))); print(task.run())")
    # the node's executor loads with UNICORN_SHIPPED_MODULES set: the modules register under their names
    node = subprocess.run([sys.executable, "-c", loader], input=pipeline, capture_output=True, cwd="/",
                          env={"PATH": "/usr/bin:/bin", "UNICORN_SHIPPED_MODULES": "1"})
    assert node.stdout.decode().splitlines() == ["['cyc', 'cyc.a', 'cyc.b', 'cyc.late']", "abb"], node.stderr
    # anywhere else (the controller reading a run back) nothing is registered
    controller = subprocess.run([sys.executable, "-c", loader], input=pipeline, capture_output=True, cwd="/",
                                env={"PATH": "/usr/bin:/bin"})
    assert controller.stdout.decode().splitlines()[0] == "[]"
    assert b"No module named 'cyc'" in controller.stderr


def test_a_module_imported_when_run_that_builds_an_experiment_itself(package: Path) -> None:
    """Importing it to ship it builds its experiment while the pipeline is being pickled (once a deadlock)."""
    (package / "cyc" / "selfexp.py").write_text(textwrap.dedent("""
        from unicorn_ansible import Experiment, Node, Pipeline, Task

        CONFIG = {"count": 3}

        class Uses(Task):
            def run(self):
                from cyc.selfexp import CONFIG
                return CONFIG["count"]

        experiment = Experiment().append(Node("n1", {}), Pipeline([Uses(name="uses")]))
    """))
    (package / "cyc" / "outer.py").write_text(textwrap.dedent("""
        from unicorn_ansible import Task

        class Outer(Task):
            def run(self):
                from cyc.selfexp import CONFIG
                return CONFIG["count"] + 1
    """))
    from cyc.outer import Outer

    built: list[bytes] = []
    thread = threading.Thread(target=lambda: built.append(
        Experiment().append(Node("n1", {}), Pipeline([Outer(name="outer")]))[0].pipeline), daemon=True)
    thread.start()
    thread.join(60)
    assert built, "pickling the pipeline never ended"
    loader = "import pickle, sys; print(pickle.loads(sys.stdin.buffer.read()).tasks[0][0].run())"
    done = subprocess.run([sys.executable, "-c", loader], input=built[0], capture_output=True, cwd="/",
                          env={"PATH": "/usr/bin:/bin", "UNICORN_SHIPPED_MODULES": "1"})
    assert done.stdout.strip() == b"4", done.stderr


def test_an_unpicklable_module_attribute_is_named_with_its_task(package: Path) -> None:
    (package / "cyc" / "held.py").write_text("import threading\nlock = threading.Lock()\n")
    (package / "cyc" / "holds.py").write_text(textwrap.dedent("""
        from unicorn_ansible import Task
        from cyc import held

        class Holds(Task):
            def run(self):
                return held.lock.locked()
    """))
    from cyc.holds import Holds

    experiment = Experiment()
    with pytest.raises(ExperimentError, match=r"task holds cannot be sent to its host: cyc\.held\.lock \(a lock\)"):
        experiment.append(Node("n1", {}), Pipeline([Holds(name="holds")]))
    assert len(experiment) == 0


def test_refused_is_not_a_result_and_says_how_to_load_it() -> None:
    refused = Refused("h1", "run-1", "Success", "scapy.layers.l2.Ether")
    assert not is_successful(refused) and refused.value_or(0) == 0
    assert result_to_json(refused)["type"] == "Refused" and result_to_json(Success(1))["type"] == "Success"
    assert "unicorn-ansible results run-1 --trust" in refused.failure() and "scapy.layers.l2.Ether" in repr(refused)
    assert cloudpickle.loads(cloudpickle.dumps(refused)) == refused


GLOBAL_VALUE = 1


def _uses_globals(x: int) -> int:
    global GLOBAL_VALUE

    def inner() -> int:
        return len(str(GLOBAL_VALUE)) + textwrap.indent.__hash__()

    GLOBAL_VALUE = [sys.maxsize for _ in range(x)][0]
    return inner() + sum(Path(str(i)).name.count("1") for i in range(x))


def test_the_globals_a_function_uses_are_found_without_cloudpickles_private_function() -> None:
    """Naming what cannot be pickled reads a function's globals with dis (issue 22: no private
    internals), the names cloudpickle's own private walker finds, in its order."""
    from unicorn_ansible.model.travel import code_globals

    found = code_globals(_uses_globals.__code__)
    assert set(found) == {"GLOBAL_VALUE", "sys", "range", "sum", "Path", "str", "len", "textwrap"}
    extract = getattr(cloudpickle.cloudpickle, "_extract_code_globals", None)
    if extract is not None:  # the cloudpickle installed here still has it: the same answer
        assert list(found) == list(extract(_uses_globals.__code__))
