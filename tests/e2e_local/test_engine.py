"""The Ansible engine end to end on the local machine (issue: compile, deploy, execute, collect)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from unicorn_ansible.engine.rundir import RunDir
from unicorn_ansible.node.protocol import OUTBOX

from .conftest import Env, node

ROOT = Path(__file__).resolve().parents[2]


def test_hello_world_on_the_embedded_default(env: Env) -> None:
    done = env.cli("run", str(ROOT / "examples" / "hello.py"), "--name", "hello", check=0)
    assert "localhost" in done.stdout and "ok" in done.stdout
    results = env.results("hello")
    local = node(results, "localhost")
    assert local["status"] == "ok" and local["prepared"] and local["success"]
    assert local["results"][0]["type"] == "Success"
    assert local["results"][0]["value"].startswith("Hello from ")
    assert local["tasks"]["hello"] == [local["results"][0]]
    # the run directory has ansible-runner's layout and the generated playbooks
    run_dir = env.home / "runs" / "hello"
    for part in ("inventory/hosts.yml", "env/envvars", "project/site.yml", "project/deploy.yml",
                 "project/execute.yml", "project/files/nodes/localhost/pipeline.pkl", "artifacts"):
        assert (run_dir / part).exists(), part
    # the host's work folder carries the inventory host name; the embedded default keeps it
    # in the home folder (here the test's own)
    run_id = RunDir(run_dir).record()["run_id"]
    assert (env.default_host_dir() / "runs" / run_id / "journal").exists()


def test_run_name_reuse_is_refused_unless_replaced(env: Env) -> None:
    experiment = ROOT / "examples" / "hello.py"
    inventory = str(env.local_inventory(["again-host"]))
    env.cli("run", str(experiment), "-i", inventory, "--name", "again", check=0)
    refused = env.cli("run", str(experiment), "-i", inventory, "--name", "again", check=2)
    assert "exists" in refused.stderr and "--replace" in refused.stderr
    env.cli("run", str(experiment), "-i", inventory, "--name", "again", "--replace", check=0)


FAILING = '''
from unicorn_ansible import Experiment, Pipeline, Task

class Fine(Task):
    def run(self):
        return {"answer": 42}

class Broken(Task):
    def run(self):
        raise RuntimeError("the probe broke")

def experiment(nodes):
    return Experiment().map(Pipeline().then(Fine(name="fine")).then(Broken(name="broken")).then(Fine(name="late")),
                            nodes.take(1))
'''


def test_a_failing_task_fails_the_run_and_stops_the_pipeline(env: Env) -> None:
    env.write("failing.py", FAILING)
    inventory = env.local_inventory(["prober"])
    env.cli("run", "failing.py", "-i", str(inventory), "--name", "failing", check=1)
    local = node(env.results("failing"), "prober")
    assert local["status"] == "failed" and local["prepared"] and not local["success"]
    assert local["results"] == [{"type": "Success", "value": {"answer": 42}},
                                {"type": "Failure", "value": "the probe broke"}]
    assert local["not_run"] == ["late"]


REQUIREMENTS = r'''
from unicorn_ansible import Experiment, Pipeline, Task

class ReadBack(Task):
    requirements = ["echo '{{ x }}' \"it's\" $((1+1)) > jinja.txt"]
    def run(self):
        import os  # requirements run in the node's environment folder, which tasks find here:
        return open(os.path.join(os.environ["UNICORN_ENVIRONMENT"], "jinja.txt")).read()

class Broken(Task):
    requirements = ["echo before-failure", "echo 'about to fail' >&2; exit 7", "touch never-here"]
    def run(self):
        return "should not run"

def experiment(nodes):
    good, bad = nodes.take(2)
    assert (good.name, bad.name) == ("good", "bad"), "nodes keep the inventory's order"
    return (Experiment()
            .append(good, Pipeline().then(ReadBack(name="read")))
            .append(bad, Pipeline().then(Broken(name="broken"))))
'''


def test_requirements_run_verbatim_and_a_failing_one_stops_only_its_host(env: Env) -> None:
    inventory = env.local_inventory(["good", "bad"])
    env.write("reqs.py", REQUIREMENTS)
    env.cli("run", "reqs.py", "-i", str(inventory), "--name", "reqs", check=1)
    results = env.results("reqs")
    good, bad = node(results, "good"), node(results, "bad")
    # the Jinja-looking text reached the shell untouched, quotes and $ included
    assert good["status"] == "ok"
    assert good["results"] == [{"type": "Success", "value": "{{ x }} it's 2\n"}]
    assert bad["status"] == "deploy_failed" and not bad["prepared"]
    assert "exit 7" in bad["error"] and "exit code 7" in bad["error"] and "about to fail" in bad["error"]
    assert bad["results"] == []
    assert not list(env.host_dir("bad").glob("envs/*/never-here"))
    assert list(env.host_dir("bad").glob("envs/*/bin/python"))  # the failed environment is where it ran


def test_a_host_without_pipelining_deploys_through_ansibles_script_action(env: Env) -> None:
    """unicorn_deploy pipes the bundle to one command; a connection without pipelining (the user's
    ansible_pipelining=false) hands over to ansible.builtin.script: the same results and reports."""
    inventory = env.local_inventory(["good", "bad"], extra="ansible_pipelining=false")
    env.write("reqs.py", REQUIREMENTS)
    for attempt in ("first", "again"):  # again: the environment is found ready
        env.cli("run", "reqs.py", "-i", str(inventory), "--name", f"reqs-{attempt}", check=1)
        results = env.results(f"reqs-{attempt}")
        good, bad = node(results, "good"), node(results, "bad")
        assert good["status"] == "ok" and good["results"] == [{"type": "Success", "value": "{{ x }} it's 2\n"}]
        assert bad["status"] == "deploy_failed" and "exit 7" in bad["error"] and "about to fail" in bad["error"]


def _wheel(folder: Path, name: str, version: str, module_source: str) -> Path:
    """A minimal pure-Python wheel, so pip installs it with no network."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": module_source.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for member, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{member},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


PIP = '''
from unicorn_ansible import Experiment, Pipeline, Task

class UseIt(Task):
    requirements = ["pip install --no-index --no-deps WHEEL"]
    def run(self):
        import sys
        import uaprobe
        return {"answer": uaprobe.ANSWER, "prefix": sys.prefix, "file": uaprobe.__file__}

def experiment(nodes):
    return Experiment().map(Pipeline().then(UseIt(name="use")), nodes.take(1))
'''


def test_pip_install_requirement_is_importable_in_run(env: Env) -> None:
    wheel = _wheel(env.root, "uaprobe", "1.0", "ANSWER = 42\n")
    env.write("pip.py", PIP.replace("WHEEL", str(wheel)))
    inventory = env.local_inventory(["piphost"])
    env.cli("run", "pip.py", "-i", str(inventory), "--name", "pip", check=0)
    value = node(env.results("pip"), "piphost")["results"][0]["value"]
    assert value["answer"] == 42
    assert value["prefix"].startswith(str(env.host_dir("piphost"))), value  # the node's own virtual environment
    assert value["file"].startswith(value["prefix"])


THREE = '''
from unicorn_ansible import Experiment, Pipeline, Task

class Say(Task):
    def __init__(self, word):
        self.word = word
        super().__init__(name="say")
    def run(self):
        return self.word

def experiment(nodes):
    experiment = Experiment()
    for number, node in enumerate(nodes.take(3)):
        pipeline = Pipeline()
        for _ in range(number + 1):
            pipeline.then(Say(f"{node.name}"))
        experiment.append(node, pipeline)
    return experiment
'''


def test_three_local_hosts_run_different_pipelines(env: Env) -> None:
    inventory = env.local_inventory(["alpha", "beta", "gamma"])
    env.write("three.py", THREE)
    env.cli("run", "three.py", "-i", str(inventory), "--name", "three", check=0)
    results = env.results("three")
    for count, host in enumerate(("alpha", "beta", "gamma"), start=1):
        entry = node(results, host)
        assert entry["status"] == "ok"
        assert entry["tasks"]["say"] == [{"type": "Success", "value": host}] * count


def _comparable(results: dict) -> list:
    out = []
    for entry in results["nodes"]:
        out.append({k: v for k, v in entry.items() if k not in ("timings",)})
    return out


def test_compiled_playbooks_run_by_plain_ansible_playbook_give_the_same_results(env: Env) -> None:
    inventory = env.local_inventory(["one", "two"])
    experiment = str(ROOT / "examples" / "measure.py")
    env.cli("run", experiment, "-i", str(inventory), "--name", "measured", check=0)
    compiled = env.root / "compiled"
    done = env.cli("compile", experiment, "-i", str(inventory), "-o", str(compiled), "--name", "by-hand", check=0)
    assert "ansible-playbook" in done.stdout
    assert not (compiled / "nodes" / "one" / "journal").exists()  # compile runs nothing
    playbook = Path(sys.executable).parent / "ansible-playbook"
    subprocess.run([str(playbook), "-i", str(inventory), "site.yml"], cwd=compiled / "project", env=env.vars,
                   check=True, capture_output=True, timeout=300)
    run = RunDir(compiled)
    for host in ("one", "two"):  # fetched by the play, written by the callback
        for path in (run.node_dir(host) / OUTBOX, run.node_status_file(host)):
            assert path.exists(), path
    by_hand = json.loads(env.cli("results", str(compiled), "--json", check=0).stdout)
    by_run = env.results("measured")
    strip = lambda results: [  # noqa: E731 - the environment path holds the run name
        {k: v for k, v in n.items() if k not in ("timings", "results", "tasks")} for n in results["nodes"]]
    assert strip(by_hand) == strip(by_run)
    for a, b in zip(by_hand["nodes"], by_run["nodes"]):
        assert [r["type"] for r in a["results"][1]] == [r["type"] for r in b["results"][1]]
        assert sorted(a["tasks"]) == sorted(b["tasks"])
