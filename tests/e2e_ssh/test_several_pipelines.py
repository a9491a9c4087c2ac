"""Several pipelines on one node over SSH: two on h1 and one on h2, coordinating through flags,
each its own executor and work folder on its host; cancel of such a run leaves no process."""

from __future__ import annotations

import os
import signal

from .conftest import Lab, node
from .test_reliability import _processes_in, _start, _wait_until

PIPELINES = '''
import os, socket, subprocess, time
from unicorn_ansible import (AtomicIncrementFlagTask, Experiment, FlagValues, Pipeline, Task,
                             WaitForExactFlagResultTask)


class Where(Task):
    requirements = ["echo shared >> requirements.log"]

    def run(self):
        return {"host": socket.gethostname(), "cwd": os.getcwd()}


def experiment(nodes):
    h1, h2 = nodes.take(2)
    waits = Pipeline().then(WaitForExactFlagResultTask("ready", FlagValues(int_value=2), timeout=60)).then(
        Where(name="where"))
    counts = Pipeline().then(AtomicIncrementFlagTask("ready")).then(Where(name="where"))
    return Experiment().append(h1, waits).append(h2, counts).append(h1, counts)
'''


def test_two_pipelines_on_h1_and_one_on_h2_coordinate_through_flags(lab: Lab) -> None:
    inventory = lab.inventory("several", hosts=["h1", "h2"])
    (lab.root / "several.py").write_text(PIPELINES)
    done = lab.cli("run", "several.py", "-i", str(inventory), "--name", "several", check=0)
    assert "2 node(s), 3 pipelines" in done.stderr
    results = lab.results("several")
    assert [(n["node"], n.get("host", n["node"]), n["status"]) for n in results["nodes"]] == [
        ("h1", "h1", "ok"), ("h2", "h2", "ok"), ("h1#2", "h1", "ok")]
    where = {n["node"]: n["tasks"]["where"][0]["value"] for n in results["nodes"]}
    assert [where[name]["host"] for name in ("h1", "h2", "h1#2")] == ["h1", "h2", "h1"]
    assert where["h1#2"]["cwd"] == where["h1"]["cwd"] + "#2"
    # h1's two pipelines share its environment: the requirement ran once there
    logs = list((lab.host_root("h1") / ".unicorn-ansible" / "hosts" / "h1" / "envs").glob("*/requirements.log"))
    assert [path.read_text().split() for path in logs] == [["shared"]]
    assert lab.cli("flags", "several", "ready", "--json", check=0).stdout.count('"int_value": 2') == 1


CANCEL = '''
import subprocess, time
from unicorn_ansible import Experiment, Pipeline, Task


class StartsAChild(Task):
    def run(self):
        subprocess.Popen(["sleep", "300"], start_new_session=True)
        time.sleep(300)


def experiment(nodes):
    h1, h2 = nodes.take(2)
    pipeline = Pipeline().then(StartsAChild(name="child"))
    return Experiment().append(h1, pipeline).append(h1, pipeline).append(h2, pipeline)
'''


def test_cancel_of_two_pipelines_on_a_host_leaves_no_process(lab: Lab) -> None:
    inventory = lab.inventory("several-cancel", hosts=["h1", "h2"])
    (lab.root / "several_cancel.py").write_text(CANCEL)
    process = _start(lab, "several_cancel.py", "-i", str(inventory), "--name", "several-cancel")
    try:
        _wait_until(lambda: sum("sleep 300" in c for c in _processes_in("ua-h1")) == 2
                    and any("sleep 300" in c for c in _processes_in("ua-h2")), 120, "every task's child to start")
        lab.cli("cancel", "several-cancel", check=0)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert _processes_in("ua-h1") == [] and _processes_in("ua-h2") == []
    results = lab.results("several-cancel")
    assert [(n["node"], n["status"]) for n in results["nodes"]] == [
        ("h1", "cancelled"), ("h1#2", "cancelled"), ("h2", "cancelled")]
    assert node(results, "h1#2")["host"] == "h1"


BECOME = '''
import os
from unicorn_ansible import Experiment, Pipeline, Task


class Who(Task):
    def run(self):
        with open(os.path.join(os.environ["UNICORN_ARTIFACTS"], "who.txt"), "w") as handle:
            handle.write(self.name)
        return [os.geteuid(), os.getcwd()]


def experiment(nodes):
    h1 = nodes.take(1)[0]
    return Experiment().append(h1, Pipeline().then(Who(name="one"))).append(h1, Pipeline().then(Who(name="two")))
'''


def test_two_pipelines_under_become_each_come_home_with_their_artifacts(lab: Lab) -> None:
    inventory = lab.inventory("several-become", hosts=["h1"], group_vars={
        "ansible_user": "unicorn", "ansible_become": "true", "ansible_become_password": lab.become_password})
    (lab.root / "several_become.py").write_text(BECOME)
    lab.cli("run", "several_become.py", "-i", str(inventory), "--name", "several-become", check=0)
    results = lab.results("several-become")
    one, two = (node(results, name) for name in ("h1", "h1#2"))
    assert one["tasks"]["one"][0]["value"][0] == 0 and two["tasks"]["two"][0]["value"][0] == 0
    assert two["tasks"]["two"][0]["value"][1] == one["tasks"]["one"][0]["value"][1] + "#2"
    run_dir = lab.home / "runs" / "several-become"
    assert (run_dir / "nodes" / "h1" / "artifacts" / "one" / "who.txt").read_text() == "one"
    assert (run_dir / "nodes" / "h1#2" / "artifacts" / "two" / "who.txt").read_text() == "two"
    assert lab.ssh("h1", "ls -A /tmp").stdout.split() == []  # the hand-over folders are gone
