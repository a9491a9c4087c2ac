"""Compiling touches no host, writes readable playbooks that pass ansible-lint, and refuses bad input clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Env

ROOT = Path(__file__).resolve().parents[2]


def test_generated_playbooks_pass_ansible_lint(env: Env) -> None:
    inventory = env.local_inventory(["one", "two"])
    out = env.root / "compiled"
    env.cli("compile", str(ROOT / "examples" / "measure.py"), "-i", str(inventory), "-o", str(out), check=0)
    project = out / "project"
    deploy = json.loads((project / "files" / "nodes" / "one" / "deploy.json").read_text())
    assert deploy["commands"] and deploy["python"] == "%d.%d" % sys.version_info[:2]
    lint = Path(sys.executable).parent / "ansible-lint"
    done = subprocess.run([str(lint), "--offline", "site.yml", "deploy.yml", "execute.yml", "roles/unicorn"],
                          cwd=project, capture_output=True, text=True, env=env.vars, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failure(s), 0 warning(s)" in done.stdout + done.stderr


@pytest.mark.parametrize(
    "source, expected",
    [
        ("def broken(:\n", "line 1"),
        ("x = 1\n", "defines no 'experiment'"),
        ("experiment = 42\n", "'experiment' is a int"),
        ("def experiment(nodes):\n    raise ValueError('no nodes for me')\n", "no nodes for me"),
    ],
    ids=["syntax-error", "no-experiment", "wrong-type", "callable-raises"],
)
def test_a_bad_experiment_file_is_one_clear_line_and_exit_2(env: Env, source: str, expected: str) -> None:
    env.write("bad.py", source)
    done = env.cli("run", "bad.py", "--name", "bad", check=2)
    assert expected in done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert not (env.home / "runs" / "bad").exists()  # nothing half-made is left behind


NODE_MISSING = '''
from unicorn_ansible import Experiment, Node, Pipeline, Task
class T(Task):
    def run(self):
        return 1
experiment = Experiment().append(Node("nowhere", {}), Pipeline().then(T()))
'''


def test_inventory_and_name_errors(env: Env) -> None:
    env.write("missing.py", NODE_MISSING)
    done = env.cli("run", "missing.py", "--name", "missing", check=2)
    assert "nowhere" in done.stderr and "not in the inventory" in done.stderr and "localhost" in done.stderr
    done = env.cli("run", str(ROOT / "examples" / "hello.py"), "-i", "no-such-inventory.ini", check=2)
    assert "does not exist" in done.stderr
    env.write("broken.ini", "[web\nhost bar=\n")
    done = env.cli("nodes", "-i", "broken.ini", check=2)
    assert "broken.ini" in done.stderr and "Traceback" not in done.stderr
    # the experiment file runs while Ansible reads the inventory: its error is still the inventory's,
    # whether the file's experiment is a function of the node pool or an Experiment
    env.write("fixed.py", "from unicorn_ansible import Experiment\nexperiment = Experiment()\n")
    for experiment in (str(ROOT / "examples" / "hello.py"), "fixed.py"):
        done = env.cli("run", experiment, "-i", "broken.ini", "--name", "never", check=2)
        assert "broken.ini" in done.stderr and "Traceback" not in done.stderr and "raised" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (env.home / "runs" / "never").exists()
    for bad in ("../escape", "a;rm -rf", "with space", "$(id)"):
        done = env.cli("run", str(ROOT / "examples" / "hello.py"), "--name", bad, check=2)
        assert "run name" in done.stderr, bad


def test_the_run_keeps_one_executor_bundle_and_each_node_only_its_own_part(env: Env) -> None:
    # 10,000 hosts wrote 10,000 copies of the 700 KB executor: 7.5 GB (issue 28, weaker list)
    import io
    import zipfile

    inventory = env.local_inventory(["one", "two", "three"])
    out = env.root / "compiled-split"
    env.cli("compile", str(ROOT / "examples" / "hello.py"), "-i", str(inventory), "-o", str(out), check=0)
    files = out / "project" / "files"
    head = (files / "unicorn-node.pyz.head").read_bytes()
    assert not list(files.rglob("unicorn-node.pyz"))  # no whole copy anywhere
    for node in ("one", "two", "three"):
        tail = (files / "nodes" / node / "unicorn-node.pyz.tail").read_bytes()
        assert len(tail) < len(head) / 5
        with zipfile.ZipFile(io.BytesIO(head + tail)) as bundle:  # what the deployment ships to the host
            assert bundle.testzip() is None
            assert json.loads(bundle.read("node/node.json")) == json.loads(
                (files / "nodes" / node / "node.json").read_text())
            assert "unicorn_node/__main__.py" in bundle.namelist()
