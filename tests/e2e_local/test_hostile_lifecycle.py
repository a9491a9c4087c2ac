"""Hostile neighbours and accidents on the controller: secrets, kill -9, delete during a run,
run names that look like folders, an experiment file that exits. Real runs, local hosts;
every wait has a deadline."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from unicorn_ansible.engine.rundir import RunDir

from .conftest import CLI, Env, node

SLOW = '''
import time
from unicorn_ansible import Experiment, Pipeline, Task

class Slow(Task):
    def run(self):
        time.sleep({seconds})
        return "slept"

def experiment(nodes):
    return Experiment().map(Pipeline().then(Slow(name="slow")), nodes.take(len(nodes)))
'''

SHOWS_PROCESSES = '''
import subprocess
from unicorn_ansible import Experiment, Pipeline, Task

class Processes(Task):
    def run(self):
        print(subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout)
        return "listed"

def experiment(nodes):
    return Experiment().map(Pipeline().then(Processes(name="processes")), nodes.take(len(nodes)))
'''

# every name shape a secret comes in -> a value to look for everywhere afterwards
SECRETS = {name: f"S3CRET-{number}-never-to-leak" for number, name in enumerate([
    "api_key", "aws_access_key_id", "db_credentials", "github_token", "db_passwd", "ansible_ssh_pass",
    "signing_private", "vault_blob", "ssl_cert", "client_secret", "apiKey", "rootpass",
    "db_password", "lab_pw", "snmp_community", "wifiPsk", "db_pwd"])}
#: templated values that use a secret: secrets themselves, never rendered (and a plain one beside them)
TEMPLATED = {"db_url": "postgres://u:{{ db_password }}@db", "dsn": "{{ db_url }}",
             "shouted": "{{ hostvars[inventory_hostname]['lab_pw'] | upper }}", "plain_peer": "{{ 'x' ~ 'y' }}"}
ENV_SECRET = "S3CRET-ENV-never-to-leak"
#: controller environment variables whose names look secret -> their values
ENV_SECRETS = {"AWS_SECRET_ACCESS_KEY": ENV_SECRET, "LAB_PW_ENV": "S3CRET-ENV-2-never-to-leak"}


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)


def kill_9_of_the_controller(controller: subprocess.Popen, when: Callable[[], bool], what: str) -> None:
    """Once ``when`` holds (within 120 s), kill -9 the controller; its ansible-playbook must end with it."""
    try:
        _until(when, 120, what)
        assert _plays_of(controller.pid), "no ansible-playbook found for the controller"
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(timeout=10)
        _until(lambda: not _plays_of(controller.pid), 10, "ansible-playbook to end with its controller")
    finally:
        if controller.poll() is None:
            controller.kill()


def _start(env: Env, *args: str) -> subprocess.Popen:
    return subprocess.Popen(CLI + list(args), env=env.vars, cwd=env.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _phase(env: Env, run: str, node: str) -> str | None:
    try:
        return json.loads((env.home / "runs" / run / "nodes" / node / "status.json").read_text()).get("phase")
    except (OSError, ValueError):
        return None


def _plays_of(controller: int) -> list[int]:
    """The ansible-playbook processes a controller started (they carry its name in their environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"UNICORN_ANSIBLE_CONTROLLER={controller}:".encode() in environment:
            found.append(int(entry.name))
    return found


def test_secrets_of_every_name_shape_stay_out_of_run_folders_hosts_ps_and_the_report(env: Env) -> None:
    inventory = env.local_inventory(["secret-a"], "\n".join(f"{k}={v}" for k, v in {**SECRETS, **TEMPLATED}.items()))
    env.vars.update(ENV_SECRETS)
    env.write("processes.py", SHOWS_PROCESSES)
    done = env.cli("run", "processes.py", "-i", str(inventory), "--name", "secretive", check=0)
    env.cli("report", "secretive", check=0)
    assert "unicorn_ansible" in env.cli("logs", "secretive", "--task", "processes", check=0).stdout  # ps was seen
    leaks = [done.stdout, done.stderr]
    places = [env.home / "runs" / "secretive", env.host_dir("secret-a")]
    for place in places:
        for path in [place, *place.rglob("*")]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode):
                assert mode & 0o077 == 0, f"{path} is {oct(mode & 0o777)}: readable by others"
            if path.is_file() and not path.is_symlink():
                leaks.append(path.read_bytes().decode("utf-8", "replace"))
    everything = "\n".join(leaks)
    leaked = [value for value in [*SECRETS.values(), *ENV_SECRETS.values(), SECRETS["lab_pw"].upper()]
              if value in everything]
    assert leaked == []
    snapshot = json.loads((env.home / "runs" / "secretive" / "inventory-snapshot.json").read_text())
    assert set(SECRETS) <= set(snapshot["secret-a"]) and "left out" in snapshot["secret-a"]["api_key"]
    assert all("left out" in snapshot["secret-a"][name] for name in ("db_url", "dsn", "shouted"))
    assert snapshot["secret-a"]["plain_peer"] == "xy"  # a template that uses no secret is rendered


def test_after_kill_9_of_the_controller_its_play_ends_status_says_so_and_collect_fetches(env: Env) -> None:
    inventory = env.local_inventory(["killed-a"])
    env.write("slow.py", SLOW.format(seconds=4))
    controller = _start(env, "run", "slow.py", "-i", str(inventory), "--name", "orphan")
    kill_9_of_the_controller(controller, lambda: _phase(env, "orphan", "killed-a") == "running", "the pipeline to run")
    socket = Path(json.loads(RunDir(env.home / "runs" / "orphan").flags_endpoint_file.read_text())["socket"])
    assert socket.exists()  # the dead controller's flag socket ...
    env.write("fast.py", SLOW.format(seconds=0))
    env.cli("run", "fast.py", "-i", str(inventory), "--name", "next", check=0)
    assert not socket.exists() and not socket.parent.exists()  # ... is removed by the next run
    status = env.cli("status", "orphan", check=0)
    assert "controller (pid" in status.stderr and "died" in status.stderr and "collect orphan" in status.stderr
    assert json.loads(env.cli("status", "orphan", "--json", check=0).stdout)["controller_died"] is True
    collected = env.cli("collect", "orphan", check=0)
    assert "killed-a" in collected.stdout and env.results("orphan")["success"]


def test_delete_of_a_running_run_is_refused_unless_forced(env: Env) -> None:
    inventory = env.local_inventory(["deleted-a"])
    env.write("slow.py", SLOW.format(seconds=60))
    runner = _start(env, "run", "slow.py", "-i", str(inventory), "--name", "doomed")
    try:
        _until(lambda: _phase(env, "doomed", "deleted-a") == "running", 120, "the pipeline to run")
        refused = env.cli("delete", "doomed", "--yes", check=2)
        assert refused.stderr.strip().count("\n") == 0 and "is running" in refused.stderr
        assert (env.home / "runs" / "doomed" / "run.json").exists()
        env.cli("delete", "doomed", "--yes", "--force", check=0)
        _, stderr = runner.communicate(timeout=90)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert "Traceback" not in stderr
    assert not (env.home / "runs" / "doomed").exists()


def test_run_names_resolve_in_the_home_only_and_paths_need_a_slash(env: Env) -> None:
    inventory = env.local_inventory(["named-a"])
    env.write("fast.py", SLOW.format(seconds=0))
    env.cli("run", "fast.py", "-i", str(inventory), "--name", "hello1", check=0)
    lookalike = env.root / "hello1"
    lookalike.mkdir()
    (lookalike / "run.json").write_text((env.home / "runs" / "hello1" / "run.json").read_text())
    env.cli("delete", "hello1", "--yes", check=0)
    assert lookalike.is_dir() and not (env.home / "runs" / "hello1").exists()
    assert "not a run folder" in env.cli("status", "./nothing-here", check=2).stderr


def test_an_experiment_file_that_exits_is_a_one_line_error(env: Env) -> None:
    env.write("exits.py", "import sys\nsys.exit(3)\n")
    done = env.cli("run", "exits.py", check=2)
    assert done.stderr.strip().count("\n") == 0 and "sys.exit(3)" in done.stderr
    for code in (0, 4):  # os._exit ends the process at once, silently: 0 looked like success (issue 28)
        env.write("os_exits.py", f"import os\ntry:\n    os._exit({code})\nexcept Exception:\n    pass\n")
        done = env.cli("run", "os_exits.py", check=2)
        assert done.stderr.strip().count("\n") == 0 and f"called os._exit({code}) while loading" in done.stderr
    env.write("os_exits.py", "import os\ndef experiment(nodes):\n    os._exit(0)\n")
    done = env.cli("run", "os_exits.py", check=2)
    assert done.stderr.strip().count("\n") == 0 and "experiment(nodes) called os._exit(0)" in done.stderr
    env.write("raises.py", 'def experiment(nodes):\n    raise ValueError("line one\\nline two")\n')
    done = env.cli("run", "raises.py", check=2)
    assert done.stderr.strip().count("\n") == 0 and "ValueError: line one line two" in done.stderr, done.stderr


LEAVES_PROCESSES = '''
import os, subprocess, time
from unicorn_ansible import Experiment, Pipeline, Task

class Leaves(Task):
    def run(self):
        pids = [subprocess.Popen(["sleep", "791"], start_new_session=True).pid]
        double = subprocess.run(["/bin/sh", "-c", "setsid sleep 792 >/dev/null 2>&1 & echo $!"],
                                capture_output=True, text=True)
        pids.append(int(double.stdout))
        reader, writer = os.pipe()
        if os.fork() == 0:  # a double fork in a session of its own: its parent is gone at once
            if os.fork() == 0:
                os.setsid()
                os.write(writer, str(os.getpid()).encode())
                os.execvp("sleep", ["sleep", "793"])
            os._exit(0)
        pids.append(int(os.read(reader, 32)))
        with open(PIDS, "w") as handle:
            handle.write(" ".join(map(str, pids)))
        time.sleep(300)

def experiment(nodes):
    return Experiment().map(Pipeline().then(Leaves(name="leaves")), nodes.take(len(nodes)))
'''


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("stop", ["cancel", "time limit"])
def test_cancel_and_time_limits_stop_new_sessions_and_double_forks_and_say_how_many(env: Env, stop: str) -> None:
    inventory = env.local_inventory(["spawner-a"])
    pids_file = env.root / "pids"
    env.write("leaves.py", LEAVES_PROCESSES.replace("PIDS", repr(str(pids_file))))
    limit = ["--run-timeout", "20"] if stop == "time limit" else []
    runner = _start(env, "run", "leaves.py", "-i", str(inventory), "--name", "spawner", *limit)
    pids: list[int] = []
    try:
        _until(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 3, 120, "the task's processes")
        pids = [int(pid) for pid in pids_file.read_text().split()]
        assert all(_alive(pid) for pid in pids)
        said = env.cli("cancel", "spawner", check=0).stdout if stop == "cancel" else ""
        out, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert [pid for pid in pids if _alive(pid)] == [], "a process the task started outlived the pipeline"
    for output in ([said] if said else []) + [env.cli("results", "spawner", check=1).stdout]:
        assert "spawner-a  stopped 3 process(es) its tasks left running" in output, output
        assert all(f"sleep {n}" in output for n in (791, 792, 793)), output
    assert "Traceback" not in err
    if stop == "cancel":  # the run's own terminal tells the same story as the cancel's
        assert "cancelled" in out and "without a state" not in out, out


PORT_TAKEN = """import sys
from unicorn_ansible.engine import flag_server
held = int(sys.argv[1])
flag_server._random_port = lambda: held  # the port another program on the controller holds
from unicorn_ansible.ui.cli import main
sys.argv = ["unicorn-ansible", *sys.argv[2:]]
main()
"""


def test_a_flag_port_held_by_another_program_is_a_one_line_error_and_status_says_why(env: Env) -> None:
    import socket
    import sys

    inventory = env.local_inventory(["held-a"])
    env.write("fast.py", SLOW.format(seconds=0))
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "-c", PORT_TAKEN, str(port), "run", "fast.py", "-i", str(inventory),
                               "--name", "held"], env=env.vars, cwd=env.root, capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert f"cannot listen on 127.0.0.1:{port}" in error
    status = env.cli("status", "held", check=0)
    assert "died" not in status.stderr and f"cannot listen on 127.0.0.1:{port}" in status.stderr


WRITES_ARTIFACTS = '''
import os
from unicorn_ansible import Experiment, Pipeline, Task

class Writes(Task):
    def run(self):
        for number in range(20):
            with open(os.path.join(self.artifacts_dir, f"file-{number}.bin"), "wb") as handle:
                handle.write(os.urandom(200_000))
        return "written"

def experiment(nodes):
    return Experiment().map(Pipeline().then(Writes(name="writes")), nodes.take(len(nodes)))
'''


def _busy_refusal(done: subprocess.CompletedProcess, run: str, doing: str, pid: int | None = None) -> bool:
    """Whether a command was refused, on one line, because another process collects (cancels, deletes) the run."""
    said = f"run {run} is being {doing} by pid {pid if pid is not None else ''}"
    return done.returncode == 1 and done.stderr.strip().count("\n") == 0 and said in done.stderr


def test_two_collects_at_once_never_share_a_file_and_a_second_one_is_refused_by_name(env: Env) -> None:
    inventory = env.local_inventory(["twice-a"])
    env.write("writes.py", WRITES_ARTIFACTS)
    env.cli("run", "writes.py", "-i", str(inventory), "--name", "twice", check=0)
    run = RunDir(env.home / "runs" / "twice")
    with run.exclusive("collected"):  # a collect under way (this process's)
        refused = env.cli("collect", "twice")
        assert _busy_refusal(refused, "twice", "collected", os.getpid()), refused.stderr
        for command in (["cancel", "twice"], ["delete", "twice", "--yes"], ["run", "writes.py", "-i", str(inventory),
                                                                             "--name", "twice", "--replace"]):
            assert _busy_refusal(env.cli(*command), "twice", "collected", os.getpid()), command
    assert run.exists()
    import shutil

    shutil.rmtree(run.node_dir("twice-a") / "artifacts")  # so that both fetch every artifact again
    (run.node_dir("twice-a") / "artifacts-index.json").unlink(missing_ok=True)
    both = [_start(env, "collect", "twice") for _ in range(2)]
    ended = []
    for collect in both:
        out, err = collect.communicate(timeout=300)
        ended.append((collect.returncode, out, err))
    for rc, _, err in ended:
        assert "Traceback" not in err and "No such file" not in err and "timed_out" not in err, err
        assert rc == 0 or "is being collected by pid" in err, err
    assert any(rc == 0 for rc, _, _ in ended)
    results = env.results("twice")
    assert results["success"] and "timed_out" not in json.dumps(results)
    artifacts = node(results, "twice-a")["artifacts"]
    assert len(artifacts) == 20 and all(a["file"] and a["left"] is None for a in artifacts), artifacts
    assert [p for p in run.path.rglob("*") if ".part" in p.name or p.name.startswith(".")
            and p.parent.name == ".artifacts-incoming"] == []


def test_delete_during_a_collect_is_refused_and_leaves_the_run_whole(env: Env) -> None:
    inventory = env.local_inventory(["busy-a"])
    env.write("slow.py", SLOW.format(seconds=25))
    controller = _start(env, "run", "slow.py", "-i", str(inventory), "--name", "busy")
    collect = None
    try:
        _until(lambda: _phase(env, "busy", "busy-a") == "running", 120, "the pipeline to run")
        os.kill(controller.pid, signal.SIGKILL)  # the run is left to `collect`, which waits for its pipeline
        controller.wait(timeout=10)
        collect = _start(env, "collect", "busy")
        busy = env.home / "runs" / "busy" / ".run.busy"
        _until(lambda: busy.exists() and f'"pid": {collect.pid}' in busy.read_text(), 60, "the collect to start")
        refused = env.cli("delete", "busy", "--yes")
        assert _busy_refusal(refused, "busy", "collected", collect.pid), refused.stderr
        assert "Traceback" not in refused.stderr and (env.home / "runs" / "busy" / "run.json").is_file()
        out, err = collect.communicate(timeout=180)
        assert collect.returncode == 0 and "Traceback" not in err, err
    finally:
        for process in (controller, collect):
            if process is not None and process.poll() is None:
                process.kill()
    assert env.results("busy")["success"]
    env.cli("delete", "busy", "--yes", check=0)
    assert not (env.home / "runs" / "busy").exists()


def test_a_run_with_a_truncated_or_missing_record_is_deleted_from_its_folder(env: Env) -> None:
    inventory = env.local_inventory(["torn-a"])
    env.write("fast.py", SLOW.format(seconds=0))
    for name in ("torn", "headless"):
        env.cli("run", "fast.py", "-i", str(inventory), "--name", name, check=0)
    record = env.home / "runs" / "torn" / "run.json"
    record.write_bytes(record.read_bytes()[: len(record.read_bytes()) // 2])
    done = env.cli("delete", "torn", "--yes", check=0)
    assert "deleted" in done.stdout and "file(s)" in done.stdout and "run.json was unreadable" in done.stdout
    assert not (env.home / "runs" / "torn").exists()
    (env.home / "runs" / "headless" / "run.json").unlink()  # what a delete cut short left before
    refused = env.cli("run", "fast.py", "-i", str(inventory), "--name", "headless", check=2)
    assert "delete headless" in refused.stderr and refused.stderr.strip().count("\n") == 0
    env.cli("delete", "headless", "--yes", check=0)
    assert not (env.home / "runs" / "headless").exists()
    env.cli("run", "fast.py", "-i", str(inventory), "--name", "headless", check=0)
    assert [p.name for p in (env.home / "runs").iterdir() if p.name.startswith(".deleting")] == []


DIES_UNDER = '''
import subprocess, time
from unicorn_ansible import Experiment, Pipeline, Task

class First(Task):
    def run(self):
        return "first"

class Sleeps(Task):
    def run(self):
        child = subprocess.Popen(["sleep", "794"])
        with open(PIDS, "w") as handle:
            handle.write(str(child.pid))
        time.sleep(300)
        return "woke"

def experiment(nodes):
    pipeline = Pipeline().then(First(name="first")).then(Sleeps(name="sleeps")).then(First(name="after"))
    return Experiment().map(pipeline, nodes.take(len(nodes)))
'''


def test_an_executor_killed_9_has_its_processes_swept_and_its_running_task_failed(env: Env) -> None:
    inventory = env.local_inventory(["oom-a"])
    pids_file = env.root / "pids"
    env.write("dies.py", DIES_UNDER.replace("PIDS", repr(str(pids_file))))
    runner = _start(env, "run", "dies.py", "-i", str(inventory), "--name", "oom")
    sleep_pid = 0
    try:
        _until(lambda: pids_file.exists() and pids_file.read_text().strip().isdigit(), 120, "the task's sleep")
        sleep_pid = int(pids_file.read_text())
        states = list(env.host_dir("oom-a").rglob("state.json"))
        assert len(states) == 1, states
        executor = json.loads(states[0].read_text())["pid"]
        os.kill(executor, signal.SIGKILL)  # as the OOM killer does
        _, err = runner.communicate(timeout=120)
        assert runner.returncode == 1 and "Traceback" not in err, err
    finally:
        if runner.poll() is None:
            runner.kill()
    _until(lambda: not _alive(sleep_pid), 10, "the task's sleep to be stopped")
    collected = env.cli("collect", "oom", check=1)
    assert "oom-a  stopped" in collected.stdout and "sleep 794" in collected.stdout, collected.stdout
    result = node(env.results("oom"), "oom-a")
    assert any("sleep 794" in p["command"] for p in result["stopped_processes"]), result["stopped_processes"]
    kinds = {t["name"]: t["kind"] for t in result["timings"]}
    assert kinds == {"first": "ok", "sleeps": "crash"}, kinds
    assert result["not_run"] == ["after"]
    assert "executor died while it ran" in json.dumps(result["tasks"]["sleeps"])
    assert "died while the pipeline ran" in (result["error"] or "")
    assert len(result["timings"]) + len(result["not_run"]) == 3


LARGE_RESULT = '''
import os
from unicorn_ansible import Experiment, Pipeline, Task

class Large(Task):
    def run(self):
        return os.urandom(400_000)

def experiment(nodes):
    return Experiment().map(Pipeline().then(Large(name="large")), nodes.take(len(nodes)))
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_the_controller_s_disk_full_at_fetch_is_named_and_what_was_fetched_is_kept(env: Env) -> None:
    import shutil

    inventory = env.local_inventory(["full-a"])
    env.write("large.py", LARGE_RESULT)
    env.cli("run", "large.py", "-i", str(inventory), "--name", "full", check=0)
    folder = env.home / "runs" / "full" / "nodes" / "full-a"
    aside = env.root / "aside"
    shutil.copytree(folder, aside)
    held = sum(4096 * -(-p.stat().st_size // 4096) for p in aside.rglob("*") if p.is_file())
    # room for what is home and the small records, not for a second copy of the 400 KB outbox
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={held + 128 * 1024},mode=0700", "tmpfs", str(folder)],
                   check=True)
    try:
        shutil.copytree(aside, folder, dirs_exist_ok=True)
        collected = env.cli("collect", "full")
        assert "Traceback" not in collected.stderr and "without a state" not in collected.stdout + collected.stderr
        assert collected.returncode in (0, 1), collected.stderr
        result = node(env.results("full"), "full-a")
        assert "the controller could not write" in (result["error"] or "") and "No space left on device" in (
            result["error"] or ""), result
        assert "timed_out" != result["status"] and result["timings"][0]["kind"] == "ok"  # what came home is kept
        assert result["tasks"]["large"], result["tasks"]
    finally:
        subprocess.run(["umount", str(folder)], check=False)
