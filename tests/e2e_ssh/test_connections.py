"""A run's SSH connections (issue 18): a host that does not answer delays no other node's start,
and no ssh process of a run outlives it (ControlPersist masters included), whether it ends, is
interrupted or is collected."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from unicorn_ansible.engine.rundir import RunDir
from unicorn_ansible.engine.ssh_masters import control_dir
from unicorn_ansible.testbed import lab as _testbed

from .conftest import CLI, Lab, node

HOSTS = ["h1", "h2", "h3", "h4", "h5"]

STAMPS = '''
import time
from unicorn_ansible import Experiment, Pipeline, Task


class Stamp(Task):
    def run(self):
        return time.time()


class Sleep(Task):
    def __init__(self, seconds):
        self.seconds = seconds
        super().__init__(name="sleep")

    def run(self):
        time.sleep(self.seconds)
        return self.seconds


def experiment(nodes):
    return Experiment().map(Pipeline().then(Stamp(name="stamp")).then(Sleep(%(sleep)s)), nodes.take(len(nodes)))
'''


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("connections")
    previous = os.environ.get("UNICORN_ANSIBLE_HOME")
    os.environ["UNICORN_ANSIBLE_HOME"] = str(root / "home")
    try:
        yield Lab(_testbed.up(len(HOSTS)), root)
    finally:
        _testbed.down()
        if previous is None:
            os.environ.pop("UNICORN_ANSIBLE_HOME", None)
        else:
            os.environ["UNICORN_ANSIBLE_HOME"] = previous


def _experiment(lab: Lab, name: str, sleep: float) -> str:
    (lab.root / f"{name}.py").write_text(STAMPS % {"sleep": sleep})
    return f"{name}.py"


def _iptables(host: str, action: str) -> None:
    """Drop (-I) or stop dropping (-D) every packet reaching the host's sshd: connections time out."""
    subprocess.run(["ip", "netns", "exec", _testbed_netns(host), "iptables", action, "INPUT", "-p", "tcp",
                    "--dport", "22", "-j", "DROP"], check=True, capture_output=True)


def _testbed_netns(host: str) -> str:
    return f"ua-{host}"


def _control_dir(lab: Lab, run: str) -> str:
    return str(control_dir(RunDir(lab.home / "runs" / run)))


def _ssh_processes_naming(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if command.startswith("ssh") and text in command:
            found.append(command)
    return found


def _wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def _start_run(lab: Lab, *args: str) -> subprocess.Popen:
    return subprocess.Popen(CLI + ["run", *args], env=lab.vars, cwd=lab.root, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_a_host_that_does_not_answer_delays_the_others_by_its_connect_timeout_and_they_start_together(
        lab: Lab) -> None:
    # h5's packets are dropped: ssh waits its whole ConnectTimeout (5 s here) before giving up
    inventory = lab.inventory("silent", host_vars={"h5": {"ansible_ssh_timeout": "5"}})
    experiment = _experiment(lab, "stamps", 0)
    _iptables("h5", "-I")
    try:
        began = time.time()
        done = lab.cli("run", experiment, "-i", str(inventory), "--name", "silent")
    finally:
        _iptables("h5", "-D")
    assert done.returncode == 1, done.stdout + done.stderr
    results = lab.results("silent")
    silent = node(results, "h5")
    assert silent["status"] == "unreachable" and "timed out" in silent["error"], silent
    starts = {name: node(results, name)["tasks"]["stamp"][0]["value"] - began for name in HOSTS[:4]}
    # all deployed, then all started together; h5 cost its 5 s connect timeout, not more (before,
    # a stale SSH master shared with earlier runs made it 25 s)
    assert max(starts.values()) - min(starts.values()) < 5, starts
    assert max(starts.values()) < 25, starts


def test_no_ssh_process_of_a_run_outlives_it(lab: Lab) -> None:
    inventory = lab.inventory("ends", hosts=["h1", "h2"])
    done = lab.cli("run", _experiment(lab, "quick", 0), "-i", str(inventory), "--name", "ends", check=0)
    control = _control_dir(lab, "ends")
    assert _wait_until(lambda: not _ssh_processes_naming(control), 5), _ssh_processes_naming(control)
    assert not Path(control).exists(), done.stdout

    # Ctrl-C while the pipelines run: the run stops, the hosts are cancelled, and its masters end
    process = _start_run(lab, _experiment(lab, "long", 300), "-i", str(inventory), "--name", "interrupted")
    try:
        finished = lab.home / "runs" / "interrupted" / "nodes" / "h2" / "finished.jsonl"  # tasks reported finished
        assert _wait_until(lambda: finished.exists() and "stamp" in finished.read_text(), 120)
        control = _control_dir(lab, "interrupted")
        assert _ssh_processes_naming(control), "the run's connections go through masters in its control folder"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1 and "unicorn-ansible collect interrupted" in err, err
    assert _wait_until(lambda: not _ssh_processes_naming(control), 5), _ssh_processes_naming(control)
    assert {n["status"] for n in lab.results("interrupted")["nodes"]} == {"cancelled"}

    # collect connects again, and leaves nothing behind either
    lab.cli("collect", "interrupted")
    assert _wait_until(lambda: not _ssh_processes_naming(control), 5), _ssh_processes_naming(control)


CYCLES = '''
import time
from unicorn_ansible import CyclePipeline, Experiment, Task


class Tick(Task):
    def run(self):
        time.sleep(1.5)
        return time.time()


def experiment(nodes):
    return Experiment().map(CyclePipeline(cycles=5, tasks=[Tick(name="tick")]), nodes.take(len(nodes)))
'''


def test_a_host_cut_mid_cycles_keeps_what_it_reported_and_collect_brings_every_cycle_back(lab: Lab) -> None:
    inventory = lab.inventory("cut", hosts=["h1", "h2"])
    (lab.root / "cycles.py").write_text(CYCLES)
    finished = lab.home / "runs" / "cut" / "nodes" / "h2" / "finished.jsonl"  # the collector appends each task

    def reported() -> list:
        try:
            return [json.loads(line) for line in finished.read_text().splitlines()]
        except (OSError, ValueError):
            return []

    process = _start_run(lab, "cycles.py", "-i", str(inventory), "--name", "cut")
    try:
        assert _wait_until(lambda: len(reported()) >= 2, 120), "h2 never reported two cycles"
        _iptables("h2", "-I")  # the link to h2 is cut; its executor goes on with the other cycles
        try:
            out, err = process.communicate(timeout=120)
            before = lab.results("cut")
            time.sleep(3)  # every cycle has finished on h2 by now (ssh took 15 s to give up)
        finally:
            _iptables("h2", "-D")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1, out + err
    h2 = node(before, "h2")
    assert h2["status"] == "unreachable"
    known = [entry["seq"] for entry in reported()]
    assert len(known) >= 2 and [entry["seq"] for entry in h2["reported"]] == known
    assert all(entry["name"] == "tick" for entry in h2["reported"])

    collected = lab.cli("collect", "cut")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    after = lab.results("cut")
    h2 = node(after, "h2")
    assert h2["status"] == "ok" and h2["reported"] == [], h2
    assert len(h2["tasks"]["tick"]) == 5 and all(r["type"] == "Success" for r in h2["tasks"]["tick"])
    phases = {n["node"]: n["phase"] for n in json.loads(lab.cli("status", "cut", "--json").stdout)["nodes"]}
    assert phases["h2"] == "executed", phases


FLAGGED = '''
from unicorn_ansible import Experiment, FlagValues, Pipeline, SetFlagTask, Task


class Hello(Task):
    def run(self):
        return "hello"


def experiment(nodes):
    pipeline = Pipeline().then(Hello(name="hello"))
    if %(flags)s:
        pipeline.then(SetFlagTask("seen", FlagValues(int_value=1), name="flag"))
    return Experiment().map(pipeline, nodes.take(len(nodes)))
'''


def test_paramiko_hosts_run_pipelines_and_a_run_using_flags_over_paramiko_is_refused_at_prepare(lab: Lab) -> None:
    # Ansible's paramiko plugin opens no port forwarding: the flag store cannot be reached from the host
    inventory = lab.inventory("paramiko", hosts=["h1"], group_vars={"ansible_connection": "paramiko",
                                                                     "ansible_host_key_checking": "false"})
    for name, flags in (("plain", False), ("flagged", True)):
        (lab.root / f"{name}.py").write_text(FLAGGED % {"flags": flags})
    done = lab.cli("run", "plain.py", "-i", str(inventory), "--name", "over-paramiko", check=0)
    assert node(lab.results("over-paramiko"), "h1")["tasks"]["hello"] == [{"type": "Success", "value": "hello"}], done
    refused = lab.cli("run", "flagged.py", "-i", str(inventory), "--name", "flags-over-paramiko", check=2)
    error = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "node h1 uses flags" in error[0] and "(paramiko)" in error[0], refused.stderr
    assert "ansible_connection=ssh" in error[0]
    assert not (lab.home / "runs" / "flags-over-paramiko").exists()
