"""Artifacts come home on the local machine: a task's artifacts folder, declared paths and
globs on tasks, pipelines and the experiment; listed, copied; fetched once."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from urllib.parse import unquote_to_bytes

from unicorn_ansible.node.protocol import artifact_folder

from .conftest import Env, node

EXPERIMENT = '''
import os
from pathlib import Path
from unicorn_ansible import Experiment, Pipeline, Task

SCRATCH = {scratch!r}

class Writes(Task):
    def run(self):
        folder = Path(os.environ["UNICORN_ARTIFACTS"])
        assert str(folder) == self.artifacts_dir
        (folder / "notes.txt").write_text("hello from " + self.name)
        (folder / "sub dir").mkdir()
        (folder / "sub dir" / "ünï côdé 'q' $x\\nline.bin").write_bytes(bytes(range(256)))
        (folder / os.fsdecode(b"raw-\\xff-name.bin")).write_bytes(b"not UTF-8")  # a name that is not UTF-8
        return "wrote"

class Capture(Task):
    """Writes to a fixed path, as library tasks do: declared, never changed."""
    def run(self):
        Path(SCRATCH, "capture.pcap").write_bytes(b"pcap" * 1000)
        Path(SCRATCH, "logs").mkdir(exist_ok=True)
        for name in ("a.log", "b.log"):
            Path(SCRATCH, "logs", name).write_text(name)
        Path(SCRATCH, "whole-run.txt").write_text("pipeline")
        Path(SCRATCH, "experiment.txt").write_text("experiment")
        return "captured"

def experiment(nodes):
    capture = Capture(name="capture").add_artifact(SCRATCH + "/capture.pcap")
    capture.add_artifact(SCRATCH + "/logs/*.log")
    pipeline = Pipeline([Writes(name="writes/odd name"), capture], artifacts=[SCRATCH + "/whole-run.txt"])
    return Experiment().append(nodes.take(1)[0], pipeline, artifacts=[SCRATCH + "/experiment.txt"])
'''


def test_task_files_and_declared_paths_come_home_listed_and_copied(env: Env) -> None:
    scratch = env.root / "scratch"
    scratch.mkdir()
    inventory = env.local_inventory(["art-a"])
    env.write("art.py", EXPERIMENT.format(scratch=str(scratch)))
    env.cli("run", "art.py", "-i", str(inventory), "--name", "arts", check=0)
    listed = {(a["task"], a["path"]): a for a in node(env.results("arts"), "art-a")["artifacts"]}
    weird = "sub dir/ünï côdé 'q' $x\nline.bin"
    raw = os.fsdecode(b"raw-\xff-name.bin")
    assert set(listed) == {("writes/odd name", "notes.txt"), ("writes/odd name", weird), ("writes/odd name", raw),
                           ("capture", "capture.pcap"), ("capture", "a.log"), ("capture", "b.log"),
                           (None, "whole-run.txt"), (None, "experiment.txt")}
    run_dir = env.home / "runs" / "arts"
    for artifact in listed.values():
        data = (run_dir / artifact["file"]).read_bytes()
        assert artifact["left"] is None and artifact["size"] == len(data)
        assert artifact["sha256"] == hashlib.sha256(data).hexdigest()
    assert (run_dir / "nodes/art-a/artifacts" / artifact_folder("writes/odd name") / weird).read_bytes() == bytes(range(256))
    assert (run_dir / "nodes/art-a/artifacts/capture/capture.pcap").read_bytes() == b"pcap" * 1000
    assert (run_dir / "nodes/art-a/artifacts/_pipeline/experiment.txt").read_text() == "experiment"
    assert (run_dir / "nodes/art-a/artifacts" / artifact_folder("writes/odd name") / raw).read_bytes() == b"not UTF-8"

    # the report links every one of them, the name that is not UTF-8 too
    env.cli("report", "arts", check=0)
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    links = {unquote_to_bytes(href) for href in re.findall(r'<a class="artifact" href="([^"]*)"', page)}
    assert links == {os.fsencode(a["file"]) for a in listed.values()}  # the report is in the run folder

    table = env.cli("artifacts", "arts", "--task", "capture", check=0).stdout
    assert "capture.pcap" in table and "notes.txt" not in table
    pcap = listed[("capture", "capture.pcap")]
    assert "artifacts of arts" in table and pcap["sha256"][:12] in table and pcap["sha256"] not in table
    env.cli("artifacts", "arts", "--node", "art-a", "-o", str(env.root / "copied"), check=0)
    assert (env.root / "copied/art-a/capture/a.log").read_text() == "a.log"
    missing = env.cli("artifacts", "arts", "--task", "nothing-like-it", check=2)
    assert "no artifacts" in missing.stderr and "Traceback" not in missing.stderr

    # a second collect fetches nothing again: the files keep their inode and time
    before = {k: (run_dir / a["file"]).stat().st_mtime_ns for k, a in listed.items()}
    env.cli("collect", "arts", check=0)
    after = {k: (run_dir / a["file"]).stat().st_mtime_ns for k, a in listed.items()}
    assert before == after


def test_the_run_cap_leaves_files_on_the_host_and_says_where(env: Env) -> None:
    scratch = env.root / "scratch"
    scratch.mkdir()
    inventory = env.local_inventory(["cap-a"])
    env.write("art.py", EXPERIMENT.format(scratch=str(scratch)))
    done = env.cli("run", "art.py", "-i", str(inventory), "--name", "capped", "--artifact-cap", "3000", check=0)
    # the run's own output names what stayed on the host, where, and why
    assert (f"capture.pcap of task capture left on the host at {scratch / 'capture.pcap'}: "
            "the run's artifact cap of 2.9 KB was reached") in done.stdout
    artifacts = node(env.results("capped"), "cap-a")["artifacts"]
    left = [a for a in artifacts if a["left"]]
    home = [a for a in artifacts if a["file"]]
    assert left and home and sum(a["size"] for a in home) <= 3000
    assert all("artifact cap of" in a["left"] and a["source"] for a in left)
    assert any(a["source"] == str(scratch / "capture.pcap") for a in left)  # 4000 bytes: over the cap
    bad = env.cli("run", "art.py", "-i", str(inventory), "--name", "bad-cap", "--artifact-cap", "lots", check=2)
    assert "--artifact-cap" in bad.stderr and "Traceback" not in bad.stderr
    listing = json.loads(env.cli("artifacts", "capped", "--json", check=1).stdout)
    assert {a["path"] for a in listing} == {a["path"] for a in artifacts}
    # what the message says to do brings the rest home; what came home already is not fetched again
    assert all("unicorn-ansible collect capped --artifact-cap SIZE" in a["left"] for a in left)
    bad = env.cli("collect", "capped", "--artifact-cap", "much", check=2)
    assert "--artifact-cap" in bad.stderr and "Traceback" not in bad.stderr
    run_dir = env.home / "runs" / "capped"
    before = {a["path"]: (run_dir / a["file"]).stat().st_mtime_ns for a in home}
    env.cli("collect", "capped", "--artifact-cap", "1G", check=0)
    collected = node(env.results("capped"), "cap-a")["artifacts"]
    assert len(collected) == len(artifacts) and all(a["file"] and not a["left"] for a in collected)
    assert (run_dir / "nodes/cap-a/artifacts/capture/capture.pcap").read_bytes() == b"pcap" * 1000
    assert {a["path"]: (run_dir / a["file"]).stat().st_mtime_ns for a in home} == before


STOPPED = '''
import os, time
from unicorn_ansible import Experiment, Pipeline, Task

class WritesThenCrashes(Task):
    def run(self):
        with open(os.path.join(self.artifacts_dir, "before-crash.txt"), "w") as handle:
            handle.write("written before os._exit")
        os._exit(3)

class WritesThenSleeps(Task):
    def run(self):
        with open(os.path.join(self.artifacts_dir, "before-limit.txt"), "w") as handle:
            handle.write("written before the time limit")
        time.sleep(120)

def experiment(nodes):
    pipeline = Pipeline([WritesThenCrashes(name="crashes"), WritesThenSleeps(name="sleeps")], early_stopping=False)
    return Experiment().map(pipeline, nodes.take(1))
'''


def test_artifacts_come_home_after_a_crashed_task_and_a_time_limit(env: Env) -> None:
    inventory = env.local_inventory(["stop-a"])
    env.write("stopped.py", STOPPED)
    env.cli("run", "stopped.py", "-i", str(inventory), "--name", "stopped", "--run-timeout", "6", check=1)
    entry = node(env.results("stopped"), "stop-a")
    assert entry["status"] == "timed_out"
    files = {a["path"]: (env.home / "runs" / "stopped" / a["file"]).read_text() for a in entry["artifacts"]}
    assert files == {"before-crash.txt": "written before os._exit", "before-limit.txt": "written before the time limit"}
    # the report says why the node stopped and what its limit was, in view
    env.cli("report", "stopped", check=0)
    page = html.unescape(re.sub(r"<details>.*?</details>", "", (env.home / "runs/stopped/report.html").read_text(),
                                flags=re.S))
    assert "timed_out: the pipeline was still running when the node's time limit was reached" in page
    assert "time limit: 6 s" in page and "crashes" in page and "before-limit.txt" in page
