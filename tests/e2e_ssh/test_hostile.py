"""The hostile suite over SSH: secrets of every name shape stay out of the run folder, the
hosts' work folders (private there too), ps and the report; kill -9 of the controller ends its
ansible-playbook, and collect fetches what the hosts went on running; another local user cannot put
a fake SSH master where a later step of the run connects; a poll of the execution play killed on the
host is asked again, never taken for the time limit. Every wait has a deadline."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.e2e_local.test_hostile_lifecycle import (
    ENV_SECRETS,
    SECRETS,
    SHOWS_PROCESSES,
    SLOW,
    TEMPLATED,
    _until,
    kill_9_of_the_controller,
)
from unicorn_ansible.engine.rundir import RunDir
from unicorn_ansible.engine.ssh_masters import control_dir

from .conftest import CLI, Lab, node


def test_secrets_stay_out_of_the_run_folder_the_hosts_ps_and_the_report(lab: Lab) -> None:
    # (ansible_ssh_pass would make Ansible log in with a password: every other shape)
    shapes = {name: value for name, value in SECRETS.items() if name != "ansible_ssh_pass"}
    inventory = lab.inventory("secretive", hosts=["h1"], group_vars={**shapes, **TEMPLATED})
    (lab.root / "processes.py").write_text(SHOWS_PROCESSES)
    lab.vars.update(ENV_SECRETS)
    try:
        done = lab.cli("run", "processes.py", "-i", str(inventory), "--name", "secretive", check=0)
    finally:
        for name in ENV_SECRETS:
            lab.vars.pop(name, None)
    lab.cli("report", "secretive", check=0)
    shown = lab.cli("logs", "secretive", "--task", "processes", check=0).stdout
    assert "unicorn-node" in shown or "unicorn_node" in shown  # the host's processes were listed
    work = lab.host_root("h1") / ".unicorn-ansible" / "hosts" / "h1"
    texts = [done.stdout, done.stderr]
    for place in (lab.home / "runs" / "secretive", work):
        for path in [place, *place.rglob("*")]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode):
                assert mode & 0o077 == 0, f"{path} is {oct(mode & 0o777)}: readable by others"
            if stat.S_ISREG(mode):
                texts.append(path.read_bytes().decode("utf-8", "replace"))
    everything = "\n".join(texts)
    leaked = [name for name, value in {**shapes, **ENV_SECRETS}.items() if value in everything]
    assert leaked == [] and shapes["lab_pw"].upper() not in everything


def test_after_kill_9_of_the_controller_its_play_ends_and_collect_fetches(lab: Lab) -> None:
    inventory = lab.inventory("orphan", hosts=["h2"])
    (lab.root / "slow.py").write_text(SLOW.format(seconds=4))
    controller = subprocess.Popen(CLI + ["run", "slow.py", "-i", str(inventory), "--name", "orphan"], env=lab.vars,
                                  cwd=lab.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = lab.home / "runs" / "orphan" / "nodes" / "h2" / "status.json"

    def running() -> bool:
        try:
            return json.loads(status.read_text()).get("phase") == "running"
        except (OSError, ValueError):
            return False

    kill_9_of_the_controller(controller, running, "the pipeline to run on h2")
    assert json.loads(lab.cli("status", "orphan", "--json", check=0).stdout)["controller_died"] is True
    lab.cli("collect", "orphan", check=0, timeout=300)
    assert node(lab.results("orphan"), "h2")["tasks"]["slow"] == [{"type": "Success", "value": "slept"}]


# -- the run's SSH control folder (issue 28, item 1) ---------------------------------------------------

QUICK = '''
from unicorn_ansible import Experiment, Pipeline, Task


class Hello(Task):
    def run(self):
        return "hello"


def experiment(nodes):
    return Experiment().map(Pipeline().then(Hello(name="hello")), nodes.take(len(nodes)))
'''

#: another local user's fake SSH master: folders made 0777 and a listening socket at each path given,
#: every connection noted in the log (run as nobody; paths it may not create are noted as denied)
FAKE_MASTER = r'''
import os, select, socket, sys, time
os.umask(0)
log, seconds, paths = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
listeners = []
for path in paths:
    try:
        os.makedirs(os.path.dirname(path), mode=0o777, exist_ok=True)
        os.chmod(os.path.dirname(path), 0o777)
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        os.chmod(path, 0o777)
        listener.listen(64)
        listeners.append(listener)
    except OSError as exc:
        print("denied", path, exc, flush=True)
open(log + ".ready", "w").close()
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for listener in select.select(listeners, [], [], 0.2)[0]:
        peer, _ = listener.accept()
        peer.settimeout(1)
        try:
            data = peer.recv(4096)
        except OSError:
            data = b""
        with open(log, "a") as handle:
            handle.write(f"{listener.getsockname()} {len(data)}\n")
        peer.close()
'''


def _shared_tmp() -> Path:
    """A fresh temporary folder every local user can write in, sticky, as /tmp is."""
    folder = Path(tempfile.mkdtemp(prefix="ua-shared-", dir="/tmp"))
    folder.chmod(0o1777)
    return folder


def _as_tmp(lab: Lab, tmp: Path) -> dict[str, str]:
    env = dict(lab.vars, TMPDIR=str(tmp))
    env.pop("XDG_RUNTIME_DIR", None)
    return env


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _master_names(lab: Lab, hosts: list[str]) -> list[str]:
    """The socket names Ansible gives each host's master in a control folder (sha1 of host-port-user)."""
    return [hashlib.sha1(f"{lab.bed.host(host).address}-{port}-root".encode()).hexdigest()[:10]
            for host in hosts for port in (None, 22)]


class _FakeMaster:
    """Another user's (nobody's) fake master listening in ``folders``, until stopped."""

    def __init__(self, lab: Lab, tmp: Path, folders: list[Path], hosts: list[str]) -> None:
        script, self.log = tmp / "fake_master.py", tmp / "fake-master.log"
        script.write_text(FAKE_MASTER)
        script.chmod(0o644)
        paths = [str(folder / name) for folder in folders for name in _master_names(lab, hosts)]
        self.process = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                         "/usr/bin/python3", str(script), str(self.log), "600", *paths],
                                        cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _until(lambda: Path(f"{self.log}.ready").exists() or self.process.poll() is not None, 30, "the fake master")
        assert self.process.poll() is None, self.process.communicate()[0]

    def connections(self) -> list[str]:
        self.process.kill()  # our own process, by its pid
        self.process.wait(timeout=10)
        return self.log.read_text().splitlines() if self.log.exists() else []


def test_another_user_cannot_hand_collect_a_fake_ssh_master(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp, fresh = _shared_tmp(), _shared_tmp()
    try:
        env = _as_tmp(lab, tmp)
        inventory = lab.inventory("hijack", hosts=["h1"])
        (lab.root / "quick.py").write_text(QUICK)
        done = _cli(env, lab.root, "run", "quick.py", "-i", str(inventory), "--name", "hijack")
        assert done.returncode == 0, done.stdout + done.stderr
        run = RunDir(lab.home / "runs" / "hijack")
        named = json.loads(run.envvars_file.read_text()).get("ANSIBLE_SSH_CONTROL_PATH_DIR")
        monkeypatch.setenv("TMPDIR", str(tmp))
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
        monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
        ours = control_dir(run)  # where collect's masters will be
        # whatever folder the next step would use, made first by another user, 0777, with a fake master in it
        folders = [Path(named)] if named else []
        fake = _FakeMaster(lab, tmp, [*folders, ours], ["h1"])
        collected = _cli(env, lab.root, "collect", "hijack")
        assert fake.connections() == []
        assert collected.returncode == 0, collected.stdout + collected.stderr
        assert node(lab.results("hijack"), "h1")["tasks"]["hello"] == [{"type": "Success", "value": "hello"}]

        # this user's own socket folder made first by another user: refused in one line, nothing connects
        squatted = fresh / ours.relative_to(tmp)
        fake = _FakeMaster(lab, fresh, [squatted], ["h1"])
        refused = _cli(_as_tmp(lab, fresh), lab.root, "collect", "hijack")
        assert fake.connections() == []
        assert refused.returncode != 0, refused.stdout + refused.stderr
        error = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and f"refusing your socket folder {squatted.parent}" in error[0], refused.stderr
        assert "remove it" in error[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)


# -- a failed poll is no time limit (issue 28, item 6) ----------------------------------------------------

def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _polls(run: str) -> list[int]:
    """The host-side Pythons of the execution play's long polls of ``run`` (``start --timeout``), in the
    session of their SSH command: not the executor a first poll forks (its own session, that command
    line), nor its tasks (in its session or their own), nor the shell around them (one word)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid, argv = int(entry.name), _argv(int(entry.name))
        if b"start" in argv and b"--timeout" in argv and any(f"/runs/{run}".encode() in word for word in argv):
            with contextlib.suppress(OSError):
                session = os.getsid(pid)
                if session != pid and b"--workdir" not in _argv(session):
                    found.append(pid)
    return found


class _PollKiller(threading.Thread):
    """Kills (SIGKILL, as the OOM killer does) the host-side Python of ``run``'s long polls, each one
    ``after`` seconds into its wait: the first one only (``every=False``), or every one until stopped."""

    def __init__(self, run: str, every: bool, after: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.run_name, self.every, self.after = run, every, after
        self.killed: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        seen: dict[int, float] = {}
        while not self.stop.wait(0.05):
            for pid in _polls(self.run_name):
                first = seen.setdefault(pid, time.monotonic())
                if pid not in self.killed and time.monotonic() - first >= self.after:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append(pid)
                    if not self.every:
                        return


def _phase_of(lab: Lab, run: str, host: str) -> str | None:
    return json.loads((lab.home / "runs" / run / "nodes" / host / "status.json").read_text()).get("phase")


def test_a_poll_killed_on_the_host_is_asked_again_and_the_node_finishes_ok(lab: Lab) -> None:
    inventory = lab.inventory("polled", hosts=["h3"])
    (lab.root / "slow.py").write_text(SLOW.format(seconds=8))
    killer = _PollKiller("polled", every=False)
    killer.start()
    try:
        lab.cli("run", "slow.py", "-i", str(inventory), "--name", "polled", check=0)
    finally:
        killer.stop.set()
        killer.join(5)
    assert len(killer.killed) == 1  # one poll's Python was killed while the pipeline ran
    found = node(lab.results("polled"), "h3")
    assert found["status"] == "ok", found
    assert found["tasks"]["slow"] == [{"type": "Success", "value": "slept"}]
    assert _phase_of(lab, "polled", "h3") == "executed"


def test_polls_that_keep_failing_say_so_not_timed_out_and_collect_then_finds_it_finished(lab: Lab) -> None:
    inventory = lab.inventory("unpolled", hosts=["h3"])
    (lab.root / "slow.py").write_text(SLOW.format(seconds=15))
    killer = _PollKiller("unpolled", every=True, after=0.5)
    killer.start()
    try:
        done = lab.cli("run", "slow.py", "-i", str(inventory), "--name", "unpolled")
    finally:
        killer.stop.set()
        killer.join(5)
    assert done.returncode != 0 and len(killer.killed) >= 3, (killer.killed, done.stdout, done.stderr)
    found = node(lab.results("unpolled"), "h3")
    assert found["status"] == "execution_failed", found
    assert "failed on the host 3 times" in found["error"] and "run-timeout" not in found["error"], found["error"]
    assert _phase_of(lab, "unpolled", "h3") != "timed_out"
    # the pipeline was left running: collect waits for it and finds it finished, nothing kept of the failure
    lab.cli("collect", "unpolled", check=0, timeout=300)
    found = node(lab.results("unpolled"), "h3")
    assert found["status"] == "ok" and found["error"] is None, found
    assert found["tasks"]["slow"] == [{"type": "Success", "value": "slept"}]


# -- collect never starts a pipeline whose deployment did not finish (issue 28, item 10) ---------------------

SLOW_REQUIREMENT = '''
from unicorn_ansible import Experiment, Pipeline, Task


class Needs(Task):
    requirements = ["sleep 20 && echo yes > /root/installed.txt"]

    def run(self):
        return open("/root/installed.txt").read().strip()


def experiment(nodes):
    return Experiment().map(Pipeline().then(Needs(name="needs")), nodes.take(len(nodes)))
'''


def test_collect_after_kill_9_during_the_deployment_does_not_start_the_pipeline(lab: Lab) -> None:
    inventory = lab.inventory("halfway", hosts=["h1"])
    (lab.root / "needs.py").write_text(SLOW_REQUIREMENT)
    work = "~/.unicorn-ansible/hosts/h1/runs/halfway-*"  # the run's id: its name and a suffix
    said = (lab.root / "halfway.out").open("w")
    controller = subprocess.Popen(CLI + ["run", "needs.py", "-i", str(inventory), "--name", "halfway"], env=lab.vars,
                                  cwd=lab.root, stdout=said, stderr=subprocess.STDOUT)
    def requirement_runs() -> bool:  # once its log is there
        assert controller.poll() is None, (lab.root / "halfway.out").read_text()
        return lab.ssh("h1", f"test -e {work}/logs/deploy/000.log").returncode == 0

    kill_9_of_the_controller(controller, requirement_runs, "the requirement to run on h1")
    # the deployment goes on on the host without its controller: collect comes before its end
    done = lab.cli("collect", "halfway", timeout=300)
    report = json.loads(lab.ssh("h1", f"cat {work}/deploy-report.json").stdout)
    assert done.returncode != 0 and not report.get("finished"), (report, done.stdout)
    assert lab.ssh("h1", f"ls {work}/started.json {work}/state.json").returncode != 0  # no executor started
    found = node(lab.results("halfway"), "h1")
    assert found["status"] == "deploy_failed", found
    assert "deployment of h1 did not finish" in found["error"] and "\n" not in found["error"], found["error"]
    # once the deployment has ended there, the next collect starts the pipeline on it
    _until(lambda: json.loads(lab.ssh("h1", f"cat {work}/deploy-report.json").stdout).get("finished") is not None,
           60, "the deployment to end on h1")
    lab.cli("collect", "halfway", check=0, timeout=300)
    assert node(lab.results("halfway"), "h1")["tasks"]["needs"] == [{"type": "Success", "value": "yes"}]
