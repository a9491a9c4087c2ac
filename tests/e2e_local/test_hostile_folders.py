"""A run folder's names never make a path outside it (issue 28, items 4 and 12).

Item 4: a hand-edited or crafted run.json whose ``executors`` (or ``hosts``) name ``../../outside``,
an absolute path, NUL or ``..`` is refused by ``results``, ``collect``, ``report``, ``logs``,
``status`` and ``artifacts`` with a one-line error naming the entry, and nothing is read or
written outside the run folder; ``delete`` still deletes it. An artifacts index naming a file
outside the node's folder is shown as not home, and never copied.

Item 12: tasks whose names clean to one folder keep their own artifacts. And an inventory host
whose name Ansible's host patterns cannot carry is refused when the run is compiled.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import Env

EXPERIMENT = '''
import os
from unicorn_ansible import Experiment, Pipeline, Task

class Leaves(Task):
    def run(self):
        with open(os.path.join(os.environ["UNICORN_ARTIFACTS"], "out.txt"), "w") as out:
            out.write("mine")
        return 1

def experiment(nodes):
    return Experiment().map(Pipeline().then(Leaves(name="leaves")), nodes.take(1))
'''


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("folders")
    env = Env(root, root / "ua-home")
    inventory = env.local_inventory(["folder-a"])
    env.write("leaves.py", EXPERIMENT)
    env.cli("run", "leaves.py", "-i", str(inventory), "--name", "honest", check=0)
    return env


def _crafted(env: Env, name: str, **fields: object) -> Path:
    """A copy of the honest run, its run.json changed by hand."""
    folder = env.home / "runs" / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(env.home / "runs" / "honest", folder, symlinks=True)
    record = folder / "run.json"
    record.write_text(json.dumps(dict(json.loads(record.read_text()), name=name, **fields)))
    return folder


def _everything(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if "runs" not in p.relative_to(root).parts[:2]}


ENTRIES = {"up and out": "../../outside", "absolute": "/tmp/unicorn-outside", "NUL": "a\0b", "dot dot": ".."}


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_a_crafted_executors_entry_is_refused_naming_it(folder_run: Env, entry: str) -> None:
    bad = ENTRIES[entry]
    before = _everything(folder_run.root)
    for field, value in (("executors", {bad: "folder-a"}), ("hosts", [bad])):
        changes: dict[str, object] = {field: value} if field == "executors" else {field: value, "executors": {}}
        _crafted(folder_run, "crafted", **changes)
        for args in (["results", "crafted"], ["results", "crafted", "--json"], ["collect", "crafted"],
                     ["report", "crafted"], ["logs", "crafted"], ["status", "crafted"], ["artifacts", "crafted"]):
            done = folder_run.cli(*args)
            assert done.returncode != 0 and "Traceback" not in done.stderr, (args, done.stderr[-1500:])
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and f"{field} entry" in lines[0], (args, lines)
            assert repr(bad).replace("\\x00", "\\x00") in lines[0], (args, lines)
        folder_run.cli("delete", "crafted", "--yes", check=0)
        assert not (folder_run.home / "runs" / "crafted").exists()
    assert _everything(folder_run.root) == before
    assert not Path("/tmp/unicorn-outside").exists() and not (folder_run.home.parent / "outside").exists()


def test_an_artifacts_index_naming_a_file_outside_is_never_read(folder_run: Env) -> None:
    secret = folder_run.root / "secret.txt"
    secret.write_text("not the run's")
    folder = _crafted(folder_run, "indexed")
    index = folder / "nodes" / "folder-a" / "artifacts-index.json"
    stored = json.loads(index.read_text())
    entries = stored["entries"] if "entries" in stored else stored
    [entry] = entries.values()
    assert entry["file"] and (folder / entry["file"]).read_text() == "mine"
    entry["file"] = str(Path("..") / ".." / ".." / "secret.txt")
    index.write_text(json.dumps(stored))
    listed = json.loads(folder_run.cli("artifacts", "indexed", "--json", check=1).stdout)
    assert listed[0]["file"] is None and "outside the node's artifacts folder" in listed[0]["left"]
    done = folder_run.cli("artifacts", "indexed", "-o", str(folder_run.root / "copied"))
    assert "Traceback" not in done.stderr and not [p for p in (folder_run.root / "copied").rglob("*") if p.is_file()]
    folder_run.cli("report", "indexed", "-o", str(folder_run.root / "r.html"), check=0)
    report = (folder_run.root / "r.html").read_text()
    assert "outside the node&#39;s artifacts folder" in report and 'secret.txt"' not in report  # named, not linked


SAME_FOLDER = '''
import os
from unicorn_ansible import Experiment, Pipeline, Task

class Leaves(Task):
    def run(self):
        with open(os.path.join(os.environ["UNICORN_ARTIFACTS"], "mine.txt"), "w") as out:
            out.write(self.name)
        return 1

def experiment(nodes):
    pipeline = Pipeline()
    for name in ("a/b", "a_b", "..", "_.."):
        pipeline = pipeline.then(Leaves(name=name))
    return Experiment().map(pipeline, nodes.take(1))
'''


def test_tasks_whose_names_clean_to_one_folder_keep_their_own_artifacts(env: Env) -> None:
    """Item 12: ``a/b`` and ``a_b``, ``..`` and ``_..`` each write mine.txt: all 4 come home, each
    under its own task, in folders of their own (on the host and at home), and are copied apart."""
    inventory = env.local_inventory(["same-a"])
    env.write("same.py", SAME_FOLDER)
    env.cli("run", "same.py", "-i", str(inventory), "--name", "same", check=0)
    listed = json.loads(env.cli("artifacts", "same", "--json", check=0).stdout)
    run_dir = env.home / "runs" / "same"
    home = {a["task"]: (run_dir / a["file"]).read_text() for a in listed if a["path"] == "mine.txt"}
    assert home == {name: name for name in ("a/b", "a_b", "..", "_..")}, listed
    assert len({a["file"] for a in listed}) == 4 and all(a["left"] is None for a in listed)
    env.cli("artifacts", "same", "-o", str(env.root / "copied"), check=0)
    copied = sorted(p.read_text() for p in (env.root / "copied").rglob("mine.txt"))
    assert copied == sorted(["a/b", "a_b", "..", "_.."])


BAD_HOSTS = {"a space": "bad host", "a comma": "x,y", "braces": "a{b}", "a newline": "new\nline", "a tab": "t\tab"}


@pytest.mark.parametrize("shape", list(BAD_HOSTS))
def test_a_host_name_ansible_cannot_carry_is_refused_at_compile_naming_it(env: Env, shape: str) -> None:
    import sys

    host = BAD_HOSTS[shape]
    inventory = env.write("hosts.yml", json.dumps({"all": {"hosts": {host: {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "unicorn_remote_root": str(env.root / "hosts-root")}}}}))
    env.write("leaves.py", EXPERIMENT)
    for args in (["run", "leaves.py", "-i", str(inventory), "--name", "badhost"],
                 ["compile", "leaves.py", "-i", str(inventory), "-o", str(env.root / "compiled")]):
        done = env.cli(*args, check=2)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and repr(host) in errors[0] and "rename the host" in errors[0], done.stderr
        assert "Traceback" not in done.stderr
    assert not (env.home / "runs" / "badhost").exists()
