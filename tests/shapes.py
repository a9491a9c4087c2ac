"""Experiment folders as people write them (issue 12), shared by the local and the SSH tests.

One folder holds a sibling module (``helper.py``), a two-level package whose modules import
each other (``lab/``), and one experiment file per shape. Every shape runs the same
CyclePipeline: ``measure`` returns a dataclass of ``lab``, ``sample`` a class of ``helper``,
``box`` an object of ``tinylib`` (a wheel built here, installed on the host by the task's
requirement) and ``check`` reads them all back through ``previous_steps``; ``check`` and
``helper.greet`` also import the user's modules when they run (inside the function), one
of them (``lab/late.py``) imported by nothing else. Beside them: an experiment
with a refused result, one needing a module hosts lack, a script using the client, notebook
cells using it, and the user's package installed in development mode.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

FILES = {
    "helper.py": """
        class Sample:
            def __init__(self, value):
                self.value = value

        def greet(who):
            from lab.probes import UNIT  # imported when it runs, on the host: lab travels all the same
            return f"hello {who} ({UNIT})"
    """,
    "lab/__init__.py": "",
    "lab/results.py": """
        import socket
        from dataclasses import dataclass

        from . import probes

        @dataclass
        class Measurement:
            rtt: float
            host: str

            def describe(self):
                return f"{self.rtt}{probes.UNIT}"

        def here():
            return socket.gethostname()
    """,
    "lab/late.py": """
        WORD = "imported by check only, when it runs"
    """,
    "lab/probes/__init__.py": """
        UNIT = "ms"
    """,
    "lab/probes/rtt.py": """
        from unicorn_ansible import Task

        from .. import results

        class Measure(Task):
            def run(self):
                return results.Measurement(1.5, results.here())
    """,
    "pipeline.py": """
        from unicorn_ansible import CyclePipeline, Task

        import helper
        from lab.probes.rtt import Measure

        WHEEL = @WHEEL@

        class MakeSample(Task):
            def run(self):
                return helper.Sample(7)

        class MakeBox(Task):
            requirements = [f"pip install --no-index {WHEEL}"]

            def run(self):
                import tinylib
                return tinylib.Box(3)

        class Check(Task):
            def run(self):
                from lab.results import Measurement  # as netunicorn's tasks import, inside run()
                from lab.late import WORD  # a module nothing imports before

                steps = self.previous_steps
                measurements = [result.unwrap() for result in steps["measure"]]
                sample, box = steps["sample"][-1].unwrap(), steps["box"][-1].unwrap()
                return {"measurements": len(measurements), "describe": measurements[-1].describe(),
                         "types": [type(measurements[-1]).__name__, type(sample).__name__, type(box).__name__],
                         "sample": sample.value, "box": box.n, "greet": helper.greet("lab"),
                         "is_measurement": isinstance(measurements[-1], Measurement), "late": WORD}

        def pipeline():
            return CyclePipeline(cycles=2, tasks=[Measure(name="measure"), MakeSample(name="sample"),
                                                  MakeBox(name="box"), Check(name="check")])
    """,
    "module_append.py": """
        from unicorn_ansible import Experiment, Node

        from pipeline import pipeline

        experiment = Experiment()
        for name in @HOSTS@:
            experiment.append(Node(name, {}), pipeline())
    """,
    "module_map.py": """
        from unicorn_ansible import Experiment, Node

        from pipeline import pipeline

        experiment = Experiment().map(pipeline(), [Node(name, {}) for name in @HOSTS@])
    """,
    "function.py": """
        from unicorn_ansible import Experiment

        from pipeline import pipeline

        def experiment(nodes):
            return Experiment().map(pipeline(), nodes.take(len(nodes)))
    """,
}
SHAPES = ("module_append.py", "module_map.py", "function.py")
#: what ``check`` returns in the second cycle, on every host
CHECKED = {"measurements": 2, "describe": "1.5ms", "types": ["Measurement", "Sample", "Box"], "sample": 7, "box": 3,
           "greet": "hello lab (ms)", "is_measurement": True, "late": "imported by check only, when it runs"}


REFUSED_EXPERIMENT = """
    import types
    from unicorn_ansible import Experiment, Pipeline, Task

    class Plain(Task):
        def run(self):
            return {"rtt": 1.5}

    class Namespace(Task):
        def run(self):
            return types.SimpleNamespace(rtt=2.5)

    def experiment(nodes):
        return Experiment().map(Pipeline([Plain(name="plain"), Namespace(name="namespace"), Plain(name="after")]),
                                nodes.take(1))
"""


SCRIPT = """
    import json
    import sys

    from unicorn_ansible import Client, Experiment, Pipeline, Task
    from helper import Sample

    class Make(Task):
        def run(self):
            return Sample(5)

    class Read(Task):
        def run(self):
            return self.previous_steps["make"][0].unwrap().value + 1

    if __name__ == "__main__":
        client = Client(inventory=sys.argv[1])
        experiment = Experiment().map(Pipeline([Make(name="make"), Read(name="read")]), client.get_nodes().take(1))
        results = client.run(experiment, "script")
        made = results["bare-a"].tasks["make"][0].unwrap()
        print(json.dumps({"made": [type(made).__name__, made.value], "read": results["bare-a"].tasks["read"][0].unwrap()}))
"""


MISSING_MODULE = {
    "render.py": """
        import jinja2  # installed on the controller, not on the host

        def version():
            return jinja2.__version__
    """,
    "exp.py": """
        from unicorn_ansible import Experiment, Pipeline, Task
        import render

        class Render(Task):
            def run(self):
                return render.version()

        class Plain(Task):
            def run(self):
                return 1

        def experiment(nodes):
            return Experiment().map(Pipeline([Plain(name="plain"), Render(name="render")]), nodes.take(1))
    """,
}


#: an installed package imported inside run(): dateutil, whose distribution is python-dateutil
MISSING_IN_RUN = """
    from unicorn_ansible import Experiment, Pipeline, Task

    class Dated(Task):
        def run(self):
            import dateutil.parser  # installed on the controller, not on the host
            return str(dateutil.parser.parse("2024-01-02"))

    def experiment(nodes):
        return Experiment().map(Pipeline([Dated(name="dated")]), nodes.take(1))
"""
#: what the task's Failure says on a host without dateutil
MISSING_IN_RUN_FAILURE = ("No module named 'dateutil'; install it on the host with a requirement of this task: "
                          "requirements = ['pip install python-dateutil']")


#: a notebook's cells, run by IPython's own shell (``NODE``: the node it runs on)
CELLS = [
    """
    from dataclasses import dataclass
    from unicorn_ansible import Client, Experiment, Pipeline, Task
    client = Client(inventory=INVENTORY)
    """,
    """
    @dataclass
    class Point:
        x: int
        y: int
    """,
    """
    class Make(Task):
        def run(self):
            return Point(1, 2)

    class Read(Task):
        def run(self):
            point = self.previous_steps["make"][0].unwrap()
            return point.x + point.y
    """,
    """
    experiment = Experiment().map(Pipeline([Make(name="make"), Read(name="read")]), client.get_nodes().take(1))
    results = client.run(experiment, "notebook")
    """,
    """
    point = results[NODE].tasks["make"][0].unwrap()
    print("RESULT", [type(point).__name__, point.x, point.y, results[NODE].tasks["read"][0].unwrap()])
    """,
]
NOTEBOOK = """
import sys, textwrap
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
shell.user_ns["INVENTORY"] = sys.argv[1]
for cell in {cells!r}:
    shell.run_cell(textwrap.dedent(cell)).raise_error()
"""


def run_notebook(inventory: Path, node: str, cwd: Path, env: dict[str, str]) -> list[object]:
    """The cells run in IPython on ``node``: what the last one prints after RESULT."""
    code = NOTEBOOK.format(cells=[cell.replace("NODE", repr(node)) for cell in CELLS])
    done = subprocess.run([sys.executable, "-c", code, str(inventory)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ").replace("'", '"'))


EDITABLE = {
    "mylab/pyproject.toml": """
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "mylab"
        version = "0.1"
    """,
    "mylab/mylab/__init__.py": "",
    "mylab/mylab/data.py": """
        from dataclasses import dataclass

        @dataclass
        class Reading:
            value: int
    """,
    "mylab/mylab/tasks.py": """
        from unicorn_ansible import Task
        from mylab.data import Reading

        class Read(Task):
            def run(self):
                return Reading(41)

        class Next(Task):
            def run(self):
                return self.previous_steps["read"][0].unwrap().value + 1
    """,
    "exp/exp.py": """
        from unicorn_ansible import Experiment, Pipeline
        from mylab.tasks import Next, Read

        def experiment(nodes):
            return Experiment().map(Pipeline([Read(name="read"), Next(name="next")]), nodes.take(1))
    """,
}


def run_editable(root: Path, inventory: Path, env: dict[str, str]) -> dict:
    """``EDITABLE`` written under ``root``, mylab installed with ``pip install -e`` into a venv of its
    own that sees the controller's packages, and exp/exp.py run from that venv: the run's JSON."""
    for name, text in EDITABLE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # this venv sees the controller's packages (unicorn-ansible and its dependencies) as a site folder
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    (next(venv.glob("lib/python*/site-packages")) / "controller.pth").write_text(
        f"import site; site.addsitedir({site_packages!r})\n")
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "-e",
                                str(root / "mylab")], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "unicorn_ansible.ui.cli", "run",
                           str(root / "exp" / "exp.py"), "-i", str(inventory), "--name", "editable", "--json"],
                          cwd=root, capture_output=True, text=True, timeout=300,
                          env=dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check_editable(tasks: dict) -> None:
    assert tasks["read"] == [{"type": "Success", "value": "Reading(value=41)"}]
    assert tasks["next"] == [{"type": "Success", "value": 42}]


def write_experiments(folder: Path, hosts: list[str], wheel: str) -> Path:
    """The experiment folder (see the module docstring); ``wheel``: the path hosts install tinylib from."""
    for name, text in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip().replace("@HOSTS@", repr(hosts)).replace("@WHEEL@", repr(wheel)))
    return folder


def build_wheel(folder: Path) -> Path:
    """tinylib 1.0, a pure-Python wheel built by hand (no build tool, no network)."""
    files = {
        "tinylib/__init__.py": "class Box:\n    def __init__(self, n):\n        self.n = n\n",
        "tinylib-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinylib\nVersion: 1.0\n",
        "tinylib-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    records = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        records.append(f"{name},sha256={digest},{len(text.encode())}")
    files["tinylib-1.0.dist-info/RECORD"] = "\n".join(records + ["tinylib-1.0.dist-info/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "tinylib-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def check_node(node: dict, tinylib_refused: bool = True) -> None:
    """A node of a shapes run: ok, every task ran twice, check saw the objects it expected; on
    the controller, the tinylib object (not installed here) is refused alone."""
    assert node["status"] == "ok", node
    assert {name: len(runs) for name, runs in node["tasks"].items()} == {"measure": 2, "sample": 2, "box": 2,
                                                                          "check": 2}
    assert node["tasks"]["check"][-1] == {"type": "Success", "value": CHECKED}
    assert node["tasks"]["measure"][0]["type"] == "Success"
    assert node["tasks"]["measure"][0]["value"].startswith("Measurement(rtt=1.5, host=")
    if tinylib_refused:
        box = node["tasks"]["box"][0]
        assert box["type"] == "Refused" and box["refers_to"].startswith("tinylib"), box
        assert "--trust" in box["value"]
