"""The hostile suite over SSH: secrets of every name shape stay out of the run folder, the
hosts' work folders (private there too), ps and the report; kill -9 of the controller ends its
ansible-playbook, and collect fetches what the hosts went on running. Every wait has a deadline."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess

from tests.e2e_local.test_hostile_lifecycle import SECRETS, SHOWS_PROCESSES, SLOW, _plays_of, _until

from .conftest import CLI, Lab, node


def test_secrets_stay_out_of_the_run_folder_the_hosts_ps_and_the_report(lab: Lab) -> None:
    # (ansible_ssh_pass would make Ansible log in with a password: every other shape)
    shapes = {name: value for name, value in SECRETS.items() if name != "ansible_ssh_pass"}
    inventory = lab.inventory("secretive", hosts=["h1"], group_vars=shapes)
    (lab.root / "processes.py").write_text(SHOWS_PROCESSES)
    done = lab.cli("run", "processes.py", "-i", str(inventory), "--name", "secretive", check=0)
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
    leaked = [name for name, value in shapes.items() if value in everything]
    assert leaked == []


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

    try:
        _until(running, 120, "the pipeline to run on h2")
        assert _plays_of(controller.pid)
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(timeout=10)
        _until(lambda: not _plays_of(controller.pid), 10, "ansible-playbook to end with its controller")
    finally:
        if controller.poll() is None:
            controller.kill()
    assert json.loads(lab.cli("status", "orphan", "--json", check=0).stdout)["controller_died"] is True
    lab.cli("collect", "orphan", check=0, timeout=300)
    assert node(lab.results("orphan"), "h2")["tasks"]["slow"] == [{"type": "Success", "value": "slept"}]
