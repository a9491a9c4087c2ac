"""Artifacts over real SSH: a tcpdump capture between two hosts, a 1 GB file with the
controller's memory bounded, after cancel and after kill -9 + collect, a hostile host."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import uuid
from pathlib import Path

from .conftest import CLI, Lab, node
from .test_reliability import _kill_matching, _start, _wait_until

CAPTURE = '''
import os, signal, socket, subprocess, time
from unicorn_ansible import (Experiment, FlagValues, Pipeline, SetFlagTask, Task, WaitForExactFlagResultTask,
                             set_flag)

CAPTURE_FILE = "/tmp/unicorn-capture.pcap"
PORT = 9999


class StartCapture(Task):
    """Like netunicorn-library's tcpdump task: a capture to a fixed path, left running
    (--immediate-mode: a SIGINT must not lose what the kernel holds in its ring)."""
    def run(self):
        process = subprocess.Popen(["tcpdump", "-i", "any", "-U", "-Z", "root", "-w", CAPTURE_FILE,
                                    "--immediate-mode", "udp", "port", str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (os.path.exists(CAPTURE_FILE) and os.path.getsize(CAPTURE_FILE)):
            time.sleep(0.1)
        time.sleep(1)  # tcpdump listens once it wrote the file's header
        set_flag("capturing", FlagValues(int_value=1))
        return process.pid


class StopCapture(Task):
    def run(self):
        pid = self.previous_steps["start-capture"][-1].unwrap()
        os.kill(pid, signal.SIGINT)
        while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z":
            time.sleep(0.1)
        return os.path.getsize(CAPTURE_FILE)


class SendUdp(Task):
    def __init__(self, address, count):
        self.address, self.count = address, count
        super().__init__(name="send")

    def run(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for number in range(self.count):
                sock.sendto(b"unicorn-pcap-marker-%03d" % number, (self.address, PORT))
                time.sleep(0.02)
        return self.count


def experiment(nodes):
    capturer, sender = nodes.take(2)
    capturing = Pipeline([StartCapture(name="start-capture").add_artifact(CAPTURE_FILE),
                          WaitForExactFlagResultTask("sent", FlagValues(int_value=1), timeout=120, name="wait"),
                          StopCapture(name="stop-capture")])
    sending = Pipeline([WaitForExactFlagResultTask("capturing", FlagValues(int_value=1), timeout=120, name="wait"),
                        SendUdp(capturer["unicorn_address"], 25),
                        SetFlagTask("sent", FlagValues(int_value=1), name="say-sent")])
    return Experiment().append(capturer, capturing).append(sender, sending)
'''


def _pcap_packets(data: bytes) -> list[bytes]:
    """The packets of a classic pcap file (either byte order, micro- or nanosecond times)."""
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}
    assert magic in order, f"not a pcap file: magic {magic.hex()}"
    packets, offset = [], 24
    while offset + 16 <= len(data):
        _, _, captured, _ = struct.unpack(order[magic] + "IIII", data[offset:offset + 16])
        packets.append(data[offset + 16:offset + 16 + captured])
        offset += 16 + captured
    assert offset == len(data), "the capture ends in the middle of a packet"
    return packets


def test_a_tcpdump_capture_between_two_hosts_comes_home_as_a_valid_pcap(lab: Lab) -> None:
    inventory = lab.inventory("capture", hosts=["h1", "h2"])
    (lab.root / "capture.py").write_text(CAPTURE)
    lab.cli("run", "capture.py", "-i", str(inventory), "--name", "capture", check=0)
    entry = node(lab.results("capture"), "h1")
    (artifact,) = [a for a in entry["artifacts"] if a["path"] == "unicorn-capture.pcap"]
    assert artifact["task"] == "start-capture" and artifact["source"] == "/tmp/unicorn-capture.pcap"
    data = (lab.home / "runs" / "capture" / artifact["file"]).read_bytes()
    assert len(data) == artifact["size"] == entry["tasks"]["stop-capture"][0]["value"]
    assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    sender = socket.inet_aton(lab.bed.host("h2").address)
    markers = {packet[packet.index(b"unicorn-pcap-marker-"):][:23] for packet in _pcap_packets(data)
               if b"unicorn-pcap-marker-" in packet and sender in packet}
    assert markers == {b"unicorn-pcap-marker-%03d" % n for n in range(25)}


BIG = '''
import hashlib, os
from unicorn_ansible import Experiment, Pipeline, Task

class Big(Task):
    """Writes 1 GiB into its artifacts folder; returns its sha256."""
    def run(self):
        digest = hashlib.sha256()
        block = os.urandom(1 << 20)
        with open(os.path.join(self.artifacts_dir, "big.bin"), "wb") as handle:
            for number in range(1024):
                piece = number.to_bytes(4, "big") + block[4:]
                digest.update(piece)
                handle.write(piece)
        return digest.hexdigest()

def experiment(nodes):
    return Experiment().map(Pipeline([Big(name="big")]), nodes.take(1))
'''

MEASURED = '''
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
'''


def test_a_1_gb_artifact_arrives_whole_with_the_controllers_memory_bounded(lab: Lab) -> None:
    inventory = lab.inventory("big", hosts=["h3"])
    (lab.root / "big.py").write_text(BIG)
    done = subprocess.run([sys.executable, "-c", MEASURED, *CLI, "run", "big.py", "-i", str(inventory),
                           "--name", "big"], env=lab.vars, cwd=lab.root, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.strip().splitlines()[-1]) / 1024
    entry = node(lab.results("big"), "h3")
    (artifact,) = entry["artifacts"]
    file = lab.home / "runs" / "big" / artifact["file"]
    assert artifact["size"] == file.stat().st_size == 1 << 30
    assert artifact["sha256"] == entry["tasks"]["big"][0]["value"]
    assert peak_mb < 400, f"a process of the controller peaked at {peak_mb:.0f} MB"
    file.unlink()  # 1 GB less on the disk for the tests after this one


STOPPED = '''
import os, time
from unicorn_ansible import Experiment, Pipeline, Task

class WritesThenWaits(Task):
    def run(self):
        with open(os.path.join(self.artifacts_dir, "partial.csv"), "w") as handle:
            handle.write("t,value\\n1,10\\n")
        open("/root/artifact-task-started", "w").close()
        time.sleep({seconds})
        return "slept"

def experiment(nodes):
    return Experiment().map(Pipeline([WritesThenWaits(name="writer")]), nodes.take(1))
'''


def _artifact_on_host_written(lab: Lab, host: str) -> bool:
    return (lab.host_root(host) / "artifact-task-started").exists()


def test_artifacts_come_home_after_cancel(lab: Lab) -> None:
    inventory = lab.inventory("art-cancel", hosts=["h1"])
    (lab.root / "cancelled.py").write_text(STOPPED.format(seconds=300))
    (lab.host_root("h1") / "artifact-task-started").unlink(missing_ok=True)
    process = _start(lab, "cancelled.py", "-i", str(inventory), "--name", "art-cancel")
    try:
        _wait_until(lambda: _artifact_on_host_written(lab, "h1"), 120, "the task to write its file")
        lab.cli("cancel", "art-cancel", check=0)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    entry = node(lab.results("art-cancel"), "h1")
    assert entry["status"] == "cancelled"
    (artifact,) = entry["artifacts"]
    assert artifact["task"] == "writer" and artifact["path"] == "partial.csv"
    assert (lab.home / "runs" / "art-cancel" / artifact["file"]).read_text() == "t,value\n1,10\n"


def test_artifacts_come_home_with_collect_after_the_controller_was_killed(lab: Lab) -> None:
    inventory = lab.inventory("art-crash", hosts=["h2"])
    (lab.root / "crashed.py").write_text(STOPPED.format(seconds=6))
    (lab.host_root("h2") / "artifact-task-started").unlink(missing_ok=True)
    process = _start(lab, "crashed.py", "-i", str(inventory), "--name", "art-crash")
    _wait_until(lambda: _artifact_on_host_written(lab, "h2"), 120, "the task to write its file")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    _kill_matching(str(inventory))
    lab.cli("collect", "art-crash", check=0)
    (artifact,) = node(lab.results("art-crash"), "h2")["artifacts"]
    file = lab.home / "runs" / "art-crash" / artifact["file"]
    assert file.read_text() == "t,value\n1,10\n"
    before = file.stat().st_mtime_ns
    lab.cli("collect", "art-crash", check=0)  # unchanged: not fetched again
    assert file.stat().st_mtime_ns == before


HOSTILE = '''
import os, zipfile
from unicorn_ansible import Experiment, Pipeline, Task

ESCAPE = {escape!r}

# what a compromised host's node side would list: paths that try to leave the node's folder
OVERRIDE = """

_honest_manifest = write_manifest


def write_manifest(workdir):
    manifest = _honest_manifest(workdir).to_json()
    honest = next(e for e in manifest["artifacts"] if e["path"] == "honest.txt")
    manifest["artifacts"] += [dict(honest, path="../../../../../../.." + ESCAPE),
                              dict(honest, path=ESCAPE),
                              dict(honest, path="a/../../../../x"),
                              dict(honest, task="../../../..", path="upward-task.txt")]
    write_json_atomic(os.path.join(workdir, "artifacts.json"), manifest)
    return manifest
""".replace("ESCAPE", repr(ESCAPE))


class Hostile(Task):
    """Plays a compromised host: a link to /etc/passwd in its folder, and a node side that lies."""
    def run(self):
        os.symlink("/etc/passwd", os.path.join(self.artifacts_dir, "passwd-link"))
        with open(os.path.join(self.artifacts_dir, "honest.txt"), "w") as handle:
            handle.write("honest")
        with zipfile.ZipFile("unicorn-node.pyz") as source:
            members = [(info, source.read(info)) for info in source.infolist()]
        with zipfile.ZipFile("unicorn-node.pyz.new", "w") as patched:
            for info, data in members:
                if info.filename == "unicorn_node/artifacts.pyc":  # the source, patched, is read instead
                    continue
                if info.filename == "unicorn_node/artifacts.py":
                    data += OVERRIDE.encode()
                patched.writestr(info, data)
        os.replace("unicorn-node.pyz.new", "unicorn-node.pyz")
        return "done"

def experiment(nodes):
    return Experiment().map(Pipeline([Hostile(name="hostile")]), nodes.take(1))
'''


def test_a_hostile_host_cannot_write_outside_its_folder_with_artifact_paths(lab: Lab, tmp_path: Path) -> None:
    escape = str(tmp_path / f"escaped-{uuid.uuid4().hex}")
    inventory = lab.inventory("hostile", hosts=["h3"])
    (lab.root / "hostile.py").write_text(HOSTILE.format(escape=escape))
    lab.cli("run", "hostile.py", "-i", str(inventory), "--name", "hostile", check=0)
    done = lab.cli("collect", "hostile", check=0)  # the patched node side packs this time
    listed = {a["path"]: a for a in node(lab.results("hostile"), "h3")["artifacts"]}
    run_dir = lab.home / "runs" / "hostile"
    assert (run_dir / listed["honest.txt"]["file"]).read_text() == "honest"
    assert "symbolic link" in listed["passwd-link"]["left"] and listed["passwd-link"]["file"] is None
    for path in ("../../../../../../.." + escape, escape, "a/../../../../x"):
        assert listed[path]["left"].startswith("refused") and listed[path]["file"] is None, path
    upward = run_dir / listed["upward-task.txt"]["file"]
    assert upward.resolve().is_relative_to((run_dir / "nodes" / "h3" / "artifacts").resolve())
    assert not Path(escape).exists() and not list(tmp_path.iterdir())
    assert not (run_dir / "x").exists() and not (run_dir.parent / "x").exists()
    assert "Traceback" not in done.stderr
    shown = json.loads(lab.cli("artifacts", "hostile", "--json", check=1).stdout)
    assert len(shown) == len(listed)
