"""A compromised host: what it sends back stays its own error, never the controller's.

One real run on two local nodes; then the victim node's fetched outbox is replaced by
what a compromised host could send, and `results`, `report` and `logs` must show the
healthy node's results and name the victim's error, with no traceback and nothing
read or written outside the victim's folder.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from returns.result import Success

from .conftest import Env, node

EXPERIMENT = '''
from unicorn_ansible import Experiment, Pipeline, Task

class Value(Task):
    def run(self):
        print("healthy output")
        return {"rtt": 1.5}

def experiment(nodes):
    return Experiment().map(Pipeline().then(Value(name="value")), nodes.take(len(nodes)))
'''

HEALTHY, VICTIM = "good-host", "evil-host"


def _header(**changes: Any) -> dict[str, Any]:
    header = {"seq": 0, "name": "value", "stage": 0, "index": 0, "stage_size": 1, "kind": "ok", "type": "Success",
              "preview": "<Success: forged>", "start": 1.0, "end": 2.0, "log": None}
    header.update(changes)
    return header


def _record(header: dict[str, Any], payload: bytes, claimed: int | None = None) -> bytes:
    header = dict(header, payload_len=len(payload) if claimed is None else claimed)
    return json.dumps(header).encode() + b"\n" + payload + b"\n"


def _outbox(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


STATE = json.dumps({"status": "finished", "done": 1, "total": 1, "failed": 0, "not_run": []}).encode()
FINE = pickle.dumps(Success(1))
DEEP = pickle.PROTO + b"\x04" + pickle.EMPTY_LIST * 100_000 + pickle.APPEND * 99_999 + pickle.STOP
BYTES_BOMB = (pickle.PROTO + b"\x04" + pickle.SHORT_BINUNICODE + b"\x08builtins" + pickle.SHORT_BINUNICODE
              + b"\x05bytes" + pickle.STACK_GLOBAL + pickle.LONG1 + b"\x05\x00\x00\x00\x00\x02" + pickle.TUPLE1
              + pickle.REDUCE + pickle.STOP)
SYSTEM = (pickle.PROTO + b"\x04" + pickle.SHORT_BINUNICODE + b"\x07pathlib" + pickle.SHORT_BINUNICODE
          + b"\x09os.system" + pickle.STACK_GLOBAL + pickle.SHORT_BINUNICODE + b"\x04true" + pickle.TUPLE1
          + pickle.REDUCE + pickle.STOP)

# what the victim sends -> what its error says
ATTACKS = {
    "seq missing": (_record({k: v for k, v in _header().items() if k != "seq"}, FINE), "seq"),
    "a name that is a list": (_record(_header(name=["a", "list"]), FINE), "name is ['a', 'list']"),
    "payload_len 10**30": (_record(_header(), FINE, claimed=10**30), "payload_len"),
    "not JSON": (b"{not json\n", "not JSON"),
    "a header a megabyte long": (b'{"x": "' + b"a" * 2**20 + b'"}\n', "longer than"),
}
#: crafted payloads under well-formed headers: that result alone is refused, never loaded
PAYLOAD_ATTACKS = {
    "a call to os.system through pathlib": (_record(_header(), SYSTEM), "refers to pathlib.os.system"),
    "100,000 nested lists": (_record(_header(), DEEP), "levels deep"),
    "bytes(2**33)": (_record(_header(), BYTES_BOMB), "larger than the payload"),
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("hostile")
    env = Env(root, root / "ua-home")
    inventory = env.local_inventory([HEALTHY, VICTIM])
    env.write("value.py", EXPERIMENT)
    env.cli("run", "value.py", "-i", str(inventory), "--name", "attacked", check=0)
    return env


def _send(env: Env, members: dict[str, bytes]) -> Path:
    """Put what a compromised host sends in place of the victim's fetched outbox."""
    folder = env.home / "runs" / "attacked" / "nodes" / VICTIM
    for name in ("journal", "state.json", ".outbox-unpacked"):
        (folder / name).unlink(missing_ok=True)
    (folder / "outbox.tar").write_bytes(_outbox(members))
    return folder


def _healthy_and_victim(env: Env, exit_code: int = 1) -> tuple[dict, dict]:
    done = env.cli("results", "attacked", "--json", check=exit_code)
    assert "Traceback" not in done.stderr, done.stderr
    results = json.loads(done.stdout)
    healthy = node(results, HEALTHY)
    assert healthy["status"] == "ok" and healthy["tasks"]["value"] == [{"type": "Success", "value": {"rtt": 1.5}}]
    return healthy, node(results, VICTIM)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_crafted_journal_is_that_node_s_named_error(hostile_run: Env, attack: str) -> None:
    journal, error = ATTACKS[attack]
    _send(hostile_run, {"state.json": STATE, "journal": journal})
    _, victim = _healthy_and_victim(hostile_run)
    assert victim["status"] == "execution_failed" and VICTIM in victim["error"] and error in victim["error"]
    report = hostile_run.cli("report", "attacked", "-o", str(hostile_run.root / "r.html"), check=0)
    assert "Traceback" not in report.stderr
    assert "healthy output" in hostile_run.cli("logs", "attacked", "--node", HEALTHY, check=0).stdout


@pytest.mark.parametrize("attack", list(PAYLOAD_ATTACKS))
def test_a_crafted_result_is_refused_alone(hostile_run: Env, attack: str) -> None:
    journal, error = PAYLOAD_ATTACKS[attack]
    _send(hostile_run, {"state.json": STATE, "journal": journal})
    done = hostile_run.cli("results", "attacked", "--json")
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    results = json.loads(done.stdout)
    assert node(results, HEALTHY)["tasks"]["value"] == [{"type": "Success", "value": {"rtt": 1.5}}]
    refused = [entry for runs in node(results, VICTIM)["tasks"].values() for entry in runs]
    assert [entry["type"] for entry in refused] == ["Refused"] and error in refused[0]["value"], refused
    report = hostile_run.cli("report", "attacked", "-o", str(hostile_run.root / "r.html"), check=0)
    assert "Traceback" not in report.stderr


def test_paths_from_a_host_stay_inside_its_folder(hostile_run: Env) -> None:
    outside = hostile_run.home / "runs" / "outside.txt"
    journal = _record(_header(log="/etc/passwd"), FINE) + _record(_header(seq=1, index=0, stage=1,
                                                                          log="../../../../../etc/passwd"), FINE)
    folder = _send(hostile_run, {"state.json": STATE, "journal": journal, "../../../outside.txt": b"escaped",
                                 "logs/../../../outside.txt": b"escaped", f"{hostile_run.root}/absolute.txt": b"escaped"})
    _, victim = _healthy_and_victim(hostile_run, exit_code=0)
    assert victim["status"] == "ok" and [t["log"] for t in victim["timings"]] == [None, None]
    assert not outside.exists()
    assert not [p for p in hostile_run.root.rglob("*") if p.name in ("outside.txt", "absolute.txt")]
    assert (folder / "journal").read_bytes() == journal
    logs = hostile_run.cli("logs", "attacked", "--node", VICTIM, check=0).stdout
    assert "root:" not in logs and "(no output)" in logs
    hostile_run.cli("report", "attacked", "-o", str(hostile_run.root / "r.html"), check=0)
    assert "passwd" not in (hostile_run.root / "r.html").read_text()


UNICODE = "ünïcødé ✓ 名前"


def test_home_elsewhere_and_any_task_name(env: Env) -> None:
    """$HOME is not the passwd home (sudo -E, CI, containers): deployment, execution and the fetch
    use one work folder; a task named in any script keeps its log."""
    home = env.root / "elsewhere"
    home.mkdir()
    env.vars["HOME"] = str(home)
    inventory = env.write("inventory.ini", f"[lab]\nhome-a\n\n[lab:vars]\nansible_connection=local\n"
                                           f"ansible_python_interpreter={sys.executable}\n")
    env.write("names.py", EXPERIMENT.replace('name="value"', f'name={UNICODE!r}'))
    env.cli("run", "names.py", "-i", str(inventory), "--name", "elsewhere", check=0)
    assert list((home / ".unicorn-ansible" / "hosts" / "home-a" / "runs").iterdir())
    shown = env.cli("logs", "elsewhere", "--task", UNICODE, check=0).stdout
    assert "healthy output" in shown and "(no output)" not in shown


BIG = '''
from unicorn_ansible import Experiment, Pipeline, Task

class Big(Task):
    def run(self):
        return b"x" * (150 * 1024 * 1024)

def experiment(nodes):
    return Experiment().map(Pipeline().then(Big(name="big")), nodes.take(1))
'''


# The CLI is started by a small Python of its own: a process's peak memory counts the memory of the
# process it was forked from (and subprocess's vfork shares the test runner's, grown over the suite).
_MEASURE = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _peak_kib(env: Env, *args: str) -> tuple[int, str]:
    """Run the CLI; its exit code is checked by the caller through the output; return its peak memory (KiB)."""
    import subprocess
    import sys

    from .conftest import CLI

    peak = env.root / "peak-kib"
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(peak), *CLI, *args], env=env.vars, cwd=env.root,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return int(peak.read_text()), done.stdout


def test_results_json_and_report_memory_is_bounded_by_the_previews(env: Env) -> None:
    inventory = env.local_inventory(["big-a"])
    env.write("big.py", BIG)
    env.cli("run", "big.py", "-i", str(inventory), "--name", "big", "--json", check=0)
    peak, output = _peak_kib(env, "results", "big", "--json")
    [value] = node(json.loads(output), "big-a")["tasks"]["big"]
    assert value["abbreviated"] > 150 * 1024 * 1024 and "157286400 bytes" in value["value"]
    assert peak < 120 * 1024, f"results --json peaked at {peak // 1024} MiB for a 150 MiB result"
    peak, _ = _peak_kib(env, "report", "big")
    assert peak < 120 * 1024, f"report peaked at {peak // 1024} MiB for a 150 MiB result"


def test_a_crafted_progress_report_is_left_out_of_status_and_the_live_view(hostile_run: Env) -> None:
    """What a host's executor reports while it runs lands in status.json: fields of the wrong type are ignored."""
    from unicorn_ansible.engine.rundir import RunDir
    from unicorn_ansible.ui.progress import describe

    _send(hostile_run, {"state.json": STATE, "journal": _record(_header(), FINE)})
    path = hostile_run.home / "runs" / "attacked" / "nodes" / VICTIM / "status.json"
    finished = path.with_name("finished.jsonl")  # each reported task, as the collector appended it
    saved, saved_finished = path.read_text(), finished.read_bytes() if finished.exists() else None
    try:
        finished.write_text("\n".join(['{"seq": [1], "name": {"a": 1}}', "[" * 100_000, "nope", '{"seq": 3, "na']))
        crafted = dict(json.loads(saved), progress={"done": "lots", "total": [1], "failed": {"a": 1}, "stages": 10**30,
                                                    "stage": None, "shape": ["graph"], "status": 7})
        crafted["finished"] = [1, "x", {"seq": [1], "name": {"a": 1}, "start": "x", "preview": 5}]
        path.write_text(json.dumps(crafted))
        for args in (["status", "attacked"], ["status", "attacked", "--json"]):
            done = hostile_run.cli(*args, check=0)
            assert "Traceback" not in done.stderr and VICTIM in done.stdout, done.stderr
        assert describe(RunDir(hostile_run.home / "runs" / "attacked").node_status(VICTIM))[1:] == (0, 0)
        for name in ("journal", "outbox.tar", ".outbox-unpacked"):  # a host lost before its results came back
            (path.parent / name).unlink(missing_ok=True)
        _, victim = _healthy_and_victim(hostile_run, exit_code=1)
        assert "Traceback" not in victim.get("error", "") and [t["name"] for t in victim["timings"]] == ["?"]
    finally:
        path.write_text(saved)
        if saved_finished is None:
            finished.unlink(missing_ok=True)
        else:
            finished.write_bytes(saved_finished)


DEEP_JSON = b"[" * 200_000 + b"]" * 200_000


@pytest.mark.parametrize("member", ["state.json", "deploy-report.json", "artifacts.json", "started.json"])
def test_a_host_s_json_file_nested_too_deep_is_that_node_s_alone(hostile_run: Env, member: str) -> None:
    members = {"state.json": STATE, "journal": _record(_header(), FINE), member: DEEP_JSON}
    _send(hostile_run, members)
    done = hostile_run.cli("results", "attacked", "--json")
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    assert node(json.loads(done.stdout), HEALTHY)["tasks"]["value"] == [{"type": "Success", "value": {"rtt": 1.5}}]
    for args in (["report", "attacked", "-o", str(hostile_run.root / "r.html")], ["logs", "attacked"],
                 ["status", "attacked"], ["results", "attacked"]):
        shown = hostile_run.cli(*args)
        assert shown.returncode in (0, 1) and "Traceback" not in shown.stderr, (args, shown.stderr[-500:])


SHARED = '''
from dataclasses import dataclass
from unicorn_ansible import Experiment, Pipeline, Task

def bomb():
    a = []
    for _ in range(34):
        a = [a, a]
    return a

@dataclass
class Holder:
    held: object

class Shared(Task):
    def run(self):
        return bomb()

class Held(Task):
    def run(self):
        return Holder(bomb())

def experiment(nodes):
    return Experiment().map(Pipeline().then(Shared(name="shared")).then(Held(name="held")), nodes.take(1))
'''


def test_results_that_share_references_are_shown_within_a_budget(env: Env) -> None:
    """``a = [a, a]`` 34 times is 2**34 lists written out: its preview (in the task's process), ``results``,
    ``results --json`` and ``report`` each write a bounded text of it, never the whole."""
    inventory = env.local_inventory(["shared-a"])
    env.write("shared.py", SHARED)
    env.cli("run", "shared.py", "-i", str(inventory), "--name", "shared", "--task-timeout", "60", check=0, timeout=120)
    done = env.cli("results", "shared", "--json", check=0, timeout=60)
    tasks = node(json.loads(done.stdout), "shared-a")["tasks"]
    assert len(done.stdout) < 200_000, len(done.stdout)
    assert tasks["shared"][0]["value"].startswith("[[[[") and tasks["held"][0]["value"].startswith("Holder(held=[[[")
    assert len(env.cli("results", "shared", check=0, timeout=60).stdout) < 20_000
    env.cli("report", "shared", "-o", str(env.root / "r.html"), check=0, timeout=60)
    assert (env.root / "r.html").stat().st_size < 2_000_000
