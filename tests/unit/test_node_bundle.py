"""The node package stands alone: it imports only itself, the standard library, cloudpickle and
returns, and the bundle runs a pipeline in a Python that has nothing else on its path."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from unicorn_ansible import Pipeline, Task
from unicorn_ansible.compiler.bundle import build_bundle
from unicorn_ansible.model.experiment import serialize_for_node
from unicorn_ansible.node.journal import iter_records
from unicorn_ansible.node.protocol import BUNDLE_PACKAGE, JOURNAL, NODE_SPEC, PIPELINE, STATE
from unicorn_ansible.resources import node_package_dir

ALLOWED = {"cloudpickle", "returns"}


def _imported_roots(path: Path) -> set[str]:
    """Top-level names a module imports absolutely (relative imports stay inside the package)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_node_package_imports_only_itself_the_standard_library_cloudpickle_and_returns() -> None:
    for path in sorted(node_package_dir().glob("*.py")):
        outside = _imported_roots(path) - set(sys.stdlib_module_names) - ALLOWED - {"__future__"}
        assert not outside, f"{path.name} imports {sorted(outside)}"


class Where(Task):
    """Returns whether the controller's package could be imported here, and a value."""

    def __init__(self, value, name=None):
        self.value = value
        super().__init__(name=name)

    def run(self):
        import importlib.util

        from unicorn_ansible import FlagValues, Success, set_flag  # inside run(): the bundle's task API

        if not (callable(set_flag) and FlagValues(int_value=1).int_value == 1 and Success(1).unwrap() == 1):
            return "the task API is broken"
        return self.value, importlib.util.find_spec("unicorn_ansible.engine") is not None


def _work_folder(folder: Path, pipeline: Pipeline) -> None:
    import cloudpickle

    module = sys.modules[__name__]  # the host cannot import this test module: ship it by value
    cloudpickle.register_pickle_by_value(module)
    try:
        (folder / PIPELINE).write_bytes(serialize_for_node(pipeline))
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    (folder / NODE_SPEC).write_text("{}")


def test_the_bundle_runs_a_pipeline_in_an_isolated_python(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "cache")
    names = zipfile.ZipFile(bundle).namelist()
    assert f"{BUNDLE_PACKAGE}/__main__.py" in names and f"{BUNDLE_PACKAGE}/scheduler.py" in names
    work = tmp_path / "work"
    work.mkdir()
    _work_folder(work, Pipeline().then(Where(1, name="one")).then([Where(2, name="two"), Where(3, name="three")]))
    # -I: no user site, no PYTHON* variables; -S: no site-packages; the bundle is all there is
    done = subprocess.run([sys.executable, "-I", "-S", str(bundle), "run", "--workdir", str(work)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    state = json.loads((work / STATE).read_text())
    assert (state["status"], state["done"], state["failed"]) == ("finished", 3, 0)
    previews = sorted(r.header.preview for r in iter_records(str(work / JOURNAL), with_payload=False))
    assert previews == ["<Success: (1, False)>", "<Success: (2, False)>", "<Success: (3, False)>"]
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import unicorn_node.scheduler, unicorn_node.__main__; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('unicorn_ansible', 'unicorn_node')))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(bundle)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "unicorn_ansible" not in done.stdout and "unicorn_node.scheduler" in done.stdout  # the executor never imports it
