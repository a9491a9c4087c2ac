"""A day in a real lab (issue 18): 5 hosts, a non-root user with become, an inventory folder with
templated group_vars, --forks 2; stuck and failing requirements, leftover processes, flags."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from unicorn_ansible.testbed import lab as _testbed

from .conftest import CLI, Lab, node

HOSTS = ["h1", "h2", "h3", "h4", "h5"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("labday")
    previous = os.environ.get("UNICORN_ANSIBLE_HOME")
    os.environ["UNICORN_ANSIBLE_HOME"] = str(root / "home")
    try:
        lab = Lab(_testbed.up(5), root)
        lab.vars["COLUMNS"] = "250"  # run's table shows whole errors
        yield lab
    finally:
        _testbed.down()
        if previous is None:
            os.environ.pop("UNICORN_ANSIBLE_HOME", None)
        else:
            os.environ["UNICORN_ANSIBLE_HOME"] = previous


def lab_folder(lab: Lab, name: str, become: bool = True, hosts: list[str] = HOSTS) -> Path:
    """An inventory folder as a lab keeps one: hosts, group_vars with templated values."""
    folder = lab.root / name
    (folder / "group_vars").mkdir(parents=True, exist_ok=True)
    lines = ["[lab]"] + [f"{h} ansible_host={lab.bed.host(h).address}" for h in hosts]
    (folder / "hosts").write_text("\n".join(lines) + "\n")
    settings = {
        "ansible_user": "unicorn", "ansible_ssh_private_key_file": lab.bed.key,
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        "peer": "{{ hostvars['" + hosts[-1] + "']['ansible_host'] }}",
    }
    if become:
        settings.update(ansible_become=True, ansible_become_password=lab.become_password)
    (folder / "group_vars" / "lab.yml").write_text(json.dumps(settings, indent=1))
    return folder


def write(lab: Lab, name: str, text: str) -> str:
    (lab.root / name).write_text(text)
    return name


def left_on_host(lab: Lab, host: str, pattern: str) -> str:
    """Processes on ``host`` matching ``pattern`` (whose first character is not a bracket)."""
    return lab.ssh(host, f"pgrep -af '[{pattern[0]}]{pattern[1:]}' || true").stdout.strip()


FAILING = '''
from unicorn_ansible import Experiment, Pipeline, Task, TaskDispatcher


class Peer(Task):
    requirements = ["echo preparing the probe", "echo 'probe: bad config' >&2; exit 7"]

    def __init__(self, peer):
        self.peer = peer
        super().__init__(name="peer")

    def run(self):
        return self.peer


class ToPeer(TaskDispatcher):
    def dispatch(self, node):
        return Peer(node["peer"])


def experiment(nodes):
    return Experiment().map(Pipeline().then(ToPeer()), nodes.take(2))
'''


def test_a_failing_requirement_under_become_reads_the_same_in_run_results_and_logs(lab: Lab) -> None:
    inventory = lab_folder(lab, "become-lab")
    done = lab.cli("run", write(lab, "failing.py", FAILING), "-i", str(inventory), "--name", "failing", check=1)
    shown = done.stdout + done.stderr
    print(shown)
    assert "requirement 2/2 on h1 failed with exit code 7: echo 'probe: bad config' >&2; exit 7" in shown
    entry = node(lab.results("failing"), "h1")
    assert entry["status"] == "deploy_failed"
    assert "exit code 7" in entry["error"] and "probe: bad config" in entry["error"]
    assert "could not run" not in entry["error"]
    logs = lab.cli("logs", "failing", "--node", "h2", check=0).stdout
    assert "preparing the probe" in logs and "probe: bad config" in logs and "(exit 7)" in logs


SUDO = '''
from unicorn_ansible import Experiment, Pipeline, Task


class NeedsRoot(Task):
    requirements = ["sudo apt-get install -y iperf3"]

    def run(self):
        return "installed"


def experiment(nodes):
    return Experiment().map(Pipeline().then(NeedsRoot()), nodes.take(1))
'''


def test_a_sudo_requirement_without_become_fails_fast_with_the_fix(lab: Lab) -> None:
    inventory = lab_folder(lab, "user-lab", become=False, hosts=["h1"])
    began = time.monotonic()
    done = lab.cli("run", write(lab, "sudo.py", SUDO), "-i", str(inventory), "--name", "sudo", check=1, timeout=120)
    assert time.monotonic() - began < 60
    entry = node(lab.results("sudo"), "h1")
    assert "waited for sudo's password" in entry["error"] and "-K" in entry["error"], done.stderr
    assert "sudo apt-get install -y iperf3" in entry["error"]


def test_run_timeout_covers_deployment(lab: Lab) -> None:
    stuck = SUDO.replace('["sudo apt-get install -y iperf3"]', '["sleep 301"]')
    inventory = lab_folder(lab, "become-lab")
    began = time.monotonic()
    lab.cli("run", write(lab, "stuck.py", stuck), "-i", str(inventory), "--name", "stuck", "--run-timeout", "5",
            check=1, timeout=120)
    assert time.monotonic() - began < 60
    entry = node(lab.results("stuck"), "h1")
    assert "did not finish within the node's time limit of 5 s" in entry["error"] and "sleep 301" in entry["error"]
    assert left_on_host(lab, "h1", "sleep 301") == ""


FLAGS = '''
from unicorn_ansible import Experiment, FlagValues, Pipeline, Task, increment_flag, wait_for_flag


class Gather(Task):
    def run(self):
        increment_flag("arrived")
        return wait_for_flag("arrived", FlagValues(int_value=5), timeout=60).int_value


def experiment(nodes):
    return Experiment().map(Pipeline().then(Gather(name="gather")), nodes.take(5))
'''


def test_flag_coordinated_nodes_finish_with_fewer_forks_than_nodes(lab: Lab) -> None:
    inventory = lab_folder(lab, "become-lab")
    lab.cli("run", write(lab, "flags.py", FLAGS), "-i", str(inventory), "--name", "flags", "--forks", "2",
            check=0, timeout=240)
    results = lab.results("flags")
    assert [n["tasks"]["gather"][0]["value"] for n in results["nodes"]] == [5] * 5


def test_flags_work_under_mitogens_strategy_and_imported_inside_run(lab: Lab) -> None:
    inline = FLAGS.replace("    def run(self):\n", "    def run(self):\n        from unicorn_ansible import increment_flag, wait_for_flag\n")
    inline = inline.replace("int_value=5", "int_value=2").replace("take(5)", "take(2)")
    inventory = lab_folder(lab, "become-lab")
    lab.cli("run", write(lab, "mitogen-flags.py", inline), "-i", str(inventory), "--name", "mitogen-flags",
            "--strategy", "mitogen_linear", check=0, timeout=240)
    assert [n["tasks"]["gather"][0]["value"] for n in lab.results("mitogen-flags")["nodes"]] == [2, 2]


def test_nodes_facts_warns_about_a_host_that_is_down(lab: Lab) -> None:
    inventory = lab.inventory("down", hosts=["h1"])
    data = json.loads(inventory.read_text())
    data["all"]["children"]["lab"]["hosts"]["gone"] = {"ansible_host": "10.77.0.99"}
    inventory.write_text(json.dumps(data))
    done = lab.cli("nodes", "-i", str(inventory), "--facts", "--json", check=0, timeout=120)
    assert "warning: gone gave no facts (unreachable or failed): its architecture is unknown" in done.stderr
    assert "h1 gave no facts" not in done.stderr


LEFTOVERS = '''
import subprocess

from unicorn_ansible import Experiment, Pipeline, Task, TaskDispatcher


class Leaves(Task):
    def __init__(self, seconds, keep):
        self.seconds = seconds
        self.keep_processes = keep
        super().__init__(name=f"leaves-{seconds}")

    def run(self):
        subprocess.Popen(["sleep", str(self.seconds)], start_new_session=True)
        subprocess.run(["/bin/sh", "-c", f"setsid python3 -m http.server {self.seconds - 700} >/dev/null 2>&1 &"])
        return "left"


class Peer(Task):
    def __init__(self, peer):
        self.peer = peer
        super().__init__(name="peer")

    def run(self):
        return self.peer


class ToPeer(TaskDispatcher):
    def dispatch(self, node):
        return Peer(node["peer"])


def experiment(nodes):
    pipeline = Pipeline().then([Leaves(777, False), Leaves(778, True)]).then(ToPeer())
    return Experiment().map(pipeline, nodes.take(1))
'''


def test_processes_tasks_leave_are_stopped_unless_kept_and_templated_peers_arrive_rendered(lab: Lab) -> None:
    inventory = lab_folder(lab, "become-lab")
    lab.cli("run", write(lab, "leftovers.py", LEFTOVERS), "-i", str(inventory), "--name", "leftovers", check=0)
    try:
        entry = node(lab.results("leftovers"), "h1")
        assert entry["tasks"]["peer"][0]["value"] == lab.bed.host("h5").address
        assert left_on_host(lab, "h1", "sleep 777") == "" and left_on_host(lab, "h1", "http.server 77$") == ""
        assert left_on_host(lab, "h1", "sleep 778") and left_on_host(lab, "h1", "http.server 78$")
        stopped = " ".join(p["command"] for p in entry["stopped_processes"])
        assert "sleep 777" in stopped and "http.server 77" in stopped and "778" not in stopped
    finally:
        lab.ssh("h1", "pkill -f 'sleep 778'; pkill -f 'http.server 78'")


HANGS = '''
from unicorn_ansible import Experiment, Pipeline, Task


class Never(Task):
    requirements = ["sleep %d"]

    def run(self):
        open("/tmp/executed-%d", "w").close()
        return "ran"


def experiment(nodes):
    return Experiment().map(Pipeline().then(Never(name="never")), nodes.take(2))
'''


def _start_run(lab: Lab, *args: str) -> subprocess.Popen:
    return subprocess.Popen(CLI + ["run", *args], env=lab.vars, cwd=lab.root, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(lab: Lab, host: str, pattern: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not left_on_host(lab, host, pattern):
        assert time.monotonic() < deadline, f"{pattern} never started on {host}"
        time.sleep(0.5)


def _nothing_left(lab: Lab, pattern: str) -> None:
    for host in ("h1", "h2"):
        assert left_on_host(lab, host, pattern) == "", f"{pattern} left on {host}"
    local = subprocess.run(["pgrep", "-af", f"[{pattern[0]}]{pattern[1:]}"], capture_output=True, text=True).stdout
    assert "ansible-playbook" not in local and "ssh " not in local, local


@pytest.mark.parametrize("how", ["cancel", "SIGINT"])
def test_stopping_a_run_during_a_hanging_requirement(lab: Lab, how: str) -> None:
    seconds = 311 if how == "cancel" else 312
    inventory = lab_folder(lab, "become-lab")
    name = f"hangs-{how.lower()}"
    process = _start_run(lab, write(lab, f"{name}.py", HANGS % (seconds, seconds)), "-i", str(inventory),
                         "--name", name, "--forks", "2")
    try:
        try:
            _wait_for(lab, "h1", f"sleep {seconds}")
        except AssertionError:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(process.communicate()) from None
        began = time.monotonic()
        if how == "cancel":
            cancelled = lab.cli("cancel", name, timeout=120)
            assert cancelled.returncode in (0, 1), cancelled.stderr
        else:
            process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        assert time.monotonic() - began < 90
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1, err
    if how == "SIGINT":
        assert f"unicorn-ansible collect {name}" in err
    _nothing_left(lab, f"sleep {seconds}")
    status = json.loads(lab.cli("status", name, "--json", check=0).stdout)
    assert status["status"] == "cancelled"
    results = lab.results(name)
    assert {n["status"] for n in results["nodes"]} == {"cancelled"}, results
    time.sleep(2)  # nothing executes afterwards
    for host in ("h1", "h2"):
        assert lab.ssh(host, f"test -e /tmp/executed-{seconds} && echo ran || echo never").stdout.strip() == "never"
