"""Experiments over real SSH on the testbed (issue: lab testbeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Lab, node

PING = '''
import re
import subprocess

from unicorn_ansible import Experiment, Failure, Node, Pipeline, Success, Task, TaskDispatcher


class Ping(Task):
    def __init__(self, address):
        self.address = address
        super().__init__(name="ping-peer")

    def run(self):
        out = subprocess.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", self.address],
                             capture_output=True, text=True)
        if out.returncode != 0:
            return Failure(f"ping {self.address} failed: {out.stdout[-200:]}")
        rtt = re.search(r"= ([0-9.]+)/([0-9.]+)/([0-9.]+)", out.stdout)
        return Success({"peer": self.address, "avg_ms": float(rtt.group(2))})


class PingPeer(TaskDispatcher):
    def dispatch(self, node: Node) -> Task:
        return Ping(node["peer"])


class WhereAmI(Task):
    def run(self):
        import os
        import sys
        return {"python": sys.executable, "sees_project": os.path.exists(os.path.join(PROJECT, "pyproject.toml")), "user": os.getuid()}


def experiment(nodes):
    return Experiment().map(Pipeline().then(PingPeer()).then(WhereAmI(name="where")), nodes.take(len(nodes)))
'''

ROOT = Path(__file__).resolve().parents[2]


def _peers(lab: Lab) -> dict:
    hosts = lab.hosts
    return {h.name: {"peer": hosts[(i + 1) % len(hosts)].address} for i, h in enumerate(hosts)}


@pytest.mark.parametrize("connection", ["ssh", "paramiko"])
def test_dispatcher_uses_host_vars_and_tasks_ping_another_host(lab: Lab, connection: str) -> None:
    extra = {"ansible_connection": connection}
    if connection == "paramiko":
        extra["ansible_host_key_checking"] = "false"
    inventory = lab.inventory(f"ping-{connection}", host_vars=_peers(lab), group_vars=extra)
    (lab.root / "ping.py").write_text(PING.replace("PROJECT", repr(str(ROOT))))
    lab.cli("run", "ping.py", "-i", str(inventory), "--name", f"ping-{connection}", check=0)
    results = lab.results(f"ping-{connection}")
    peers = _peers(lab)
    for host in lab.hosts:
        entry = node(results, host.name)
        assert entry["status"] == "ok", entry
        ping = entry["tasks"]["ping-peer"][0]
        assert ping["type"] == "Success"
        assert ping["value"]["peer"] == peers[host.name]["peer"]
        assert 0 < ping["value"]["avg_ms"] < 1000
        where = entry["tasks"]["where"][0]["value"]
        # hosts have only their system Python: no controller venv, no project folder
        assert where["sees_project"] is False
        assert where["python"].startswith("/root/.unicorn-ansible/hosts/") or where["python"] == "/usr/bin/python3"


BECOME = '''
from unicorn_ansible import Experiment, Pipeline, Task


class Proof(Task):
    requirements = ["id -u > /root/become-proof", "test -w /root"]

    def run(self):
        import os
        return open("/root/become-proof").read().strip()


class Big(Task):
    def run(self):
        return b"u" * (9 << 20)  # over 8 MB: the journal is fetched on its own, through become too


def experiment(nodes):
    return Experiment().map(Pipeline().then(Proof(name="proof")).then(Big(name="big")), nodes.take(1))
'''


def test_become_through_the_inventory_with_a_non_root_user(lab: Lab) -> None:
    password = lab.become_password
    inventory = lab.inventory("become", hosts=["h1"], group_vars={
        "ansible_user": "unicorn", "ansible_become": "true", "ansible_become_password": password})
    (lab.root / "become.py").write_text(BECOME)
    lab.cli("run", "become.py", "-i", str(inventory), "--name", "become", check=0)
    entry = node(lab.results("become"), "h1")
    assert entry["tasks"]["proof"] == [{"type": "Success", "value": "0"}]
    big = entry["tasks"]["big"][0]  # over a megabyte: the view shows its preview
    assert "<bytes of 9437184 bytes: b'uuuu" in big["value"] and big["abbreviated"] > 9 << 20
    assert (lab.host_root("h1") / "become-proof").read_text().strip() == "0"
    # results came through the connection's own transfer (not base64 through slurp), and the
    # login user's hand-over folder is gone
    run_dir = lab.home / "runs" / "become"
    events = [json.loads(p.read_text()) for p in (run_dir / "artifacts").rglob("job_events/*.json")]
    # (the call that sees the pipeline over fetches, looping over the node's executors: each
    # item's event carries its route; the small outbox came with the answer, the 9 MB journal
    # beside it through the hand-over)
    routes = {e["event_data"]["res"].get("route") for e in events
              if e.get("event") == "runner_item_on_ok" and e["event_data"]["res"].get("route")
              and e["event_data"].get("task_action", "").endswith(("unicorn_fetch", "unicorn_node"))}
    assert routes == {"become hand-over"}
    assert lab.ssh("h1", "ls -A /tmp").stdout.split() == []
    # the become password never lands in anything the run wrote
    leaks = [str(p) for p in run_dir.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert leaks == []


def test_become_password_typed_on_the_command_line(lab: Lab) -> None:
    password = lab.become_password
    inventory = lab.inventory("become-k", hosts=["h2"], group_vars={"ansible_user": "unicorn", "ansible_become": "true"})
    (lab.root / "become.py").write_text(BECOME)
    lab.cli("run", "become.py", "-i", str(inventory), "--name", "become-k", "-K", input=password + "\n", check=0)
    run_dir = lab.home / "runs" / "become-k"
    leaks = [str(p) for p in run_dir.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert leaks == []


HELLO = '''
from unicorn_ansible import Experiment, Pipeline, Task

class Hello(Task):
    def run(self):
        import sys
        return sys.version

def experiment(nodes):
    return Experiment().map(Pipeline().then(Hello(name="hello")), nodes.take(len(nodes)))
'''


def test_a_host_with_another_python_is_refused_and_the_others_run(lab: Lab) -> None:
    inventory = lab.inventory("pythons", host_vars={"h3": {"ansible_python_interpreter": "/usr/bin/pypy3"}})
    (lab.root / "hello.py").write_text(HELLO)
    lab.cli("run", "hello.py", "-i", str(inventory), "--name", "pythons", check=1)
    results = lab.results("pythons")
    refused = node(results, "h3")
    assert refused["status"] == "deploy_failed"
    assert "3.9" in refused["error"] and "3.11" in refused["error"] and "ansible_python_interpreter" in refused["error"]
    for name in ("h1", "h2"):
        assert node(results, name)["status"] == "ok"


def test_mitogen_strategy_passthrough(lab: Lab) -> None:
    inventory = lab.inventory("mitogen", hosts=["h1", "h2"])
    (lab.root / "hello.py").write_text(HELLO)
    lab.cli("run", "hello.py", "-i", str(inventory), "--name", "mitogen", "--strategy", "mitogen_linear", check=0)
    envvars = json.loads((lab.home / "runs" / "mitogen" / "env" / "envvars").read_text())
    assert envvars["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert envvars["ANSIBLE_STRATEGY_PLUGINS"].endswith("ansible_mitogen/plugins/strategy")
    results = lab.results("mitogen")
    assert [node(results, h)["status"] for h in ("h1", "h2")] == ["ok", "ok"]


def test_nodes_with_facts_learn_each_host_architecture(lab: Lab) -> None:
    import platform

    inventory = lab.inventory("facts")  # no unicorn_architecture: only the hosts can tell
    plain = json.loads(lab.cli("nodes", "-i", str(inventory), "--json", check=0).stdout)
    assert {n["architecture"] for n in plain} == {"unknown"}
    gathered = json.loads(lab.cli("nodes", "-i", str(inventory), "--facts", "--json", check=0).stdout)
    expected = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}[platform.machine()]
    assert [(n["name"], n["architecture"]) for n in gathered] == [(h.name, expected) for h in lab.hosts]
    assert all("lab" in n["properties"]["groups"] for n in gathered)
