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

from .conftest import CLI, Env

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
    try:
        _until(lambda: _phase(env, "orphan", "killed-a") == "running", 120, "the pipeline to run")
        plays = _plays_of(controller.pid)
        assert plays, "no ansible-playbook found for the controller"
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(timeout=10)
        _until(lambda: not _plays_of(controller.pid), 10, "ansible-playbook to end with its controller")
    finally:
        if controller.poll() is None:
            controller.kill()
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
