"""The Python client over SSH (issue 24): a run started from a script that exits is played to the
end by its own controller, with the become password the script typed handed over on a pipe; a
deployment whose requirement fails on one host is never started there, the others run."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from unicorn_ansible import Client, ExperimentStatus

from .conftest import Lab

STARTER = '''
import sys
from unicorn_ansible import Client, Experiment, ExperimentStatus, Pipeline, Task

class Proof(Task):
    requirements = ["id -u > /root/client-proof"]

    def run(self):
        import time
        time.sleep(2)
        return open("/root/client-proof").read().strip()

class Fails(Task):
    requirements = ["true", "exit 3"]

    def run(self):
        return "ran anyway"

client = Client(inventory=sys.argv[1], become_password=sys.stdin.readline().rstrip("\\n"))
by = {node.name: node for node in client.get_nodes()}
experiment = (Experiment().append(by["h1"], Pipeline().then(Proof(name="proof")))
              .append(by["h2"], Pipeline().then(Proof(name="proof")))
              .append(by["h3"], Pipeline().then(Fails(name="fails"))))
client.prepare_experiment(experiment, "from-a-script")
client.wait("from-a-script", ExperimentStatus.READY, timeout=300)
client.start_execution("from-a-script")
print("started", flush=True)                       # and the script ends
'''


def test_a_script_that_exits_leaves_its_run_to_its_controller_with_the_typed_become_password(lab: Lab) -> None:
    password = lab.become_password
    inventory = lab.inventory("client", group_vars={"ansible_user": "unicorn", "ansible_become": "true"})
    script = lab.root / "starter.py"
    script.write_text(STARTER)
    done = subprocess.run([sys.executable, str(script), str(inventory)], env=lab.vars, input=password + "\n",
                          capture_output=True, text=True, timeout=300, cwd=lab.root)
    assert done.returncode == 0 and done.stdout == "started\n", done.stderr
    client = Client(inventory=str(inventory))
    deadline = time.monotonic() + 300
    while (info := client.get_experiment_status("from-a-script")).status != ExperimentStatus.FINISHED:
        assert time.monotonic() < deadline, info
        time.sleep(0.5)
    outcome = {r.executor_id: (r.status, r.error) for r in info.execution_result}
    assert outcome == {"h1": ("ok", None), "h2": ("ok", None), "h3": (
        "deploy_failed", "Executor is not prepared: requirement 2/2 on h3 failed with exit code 3: exit 3")}
    assert [r.result[0].unwrap()["proof"][0].unwrap() for r in info.execution_result[:2]] == ["0", "0"]  # as root
    assert not lab.ssh("h3", "ls ~unicorn/.unicorn-ansible/hosts/h3/runs/*/state.json").stdout.strip()
    run_dir = lab.home / "runs" / "from-a-script"
    leaks = [str(p) for p in run_dir.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert leaks == []
    status = json.loads(lab.cli("status", "from-a-script", "--json", check=0).stdout)
    assert status["status"] == "finished" and not status["controller_died"]
