#!/usr/bin/env python3
"""End-to-end benchmark: `unicorn-ansible run` beside plain Ansible on the local SSH testbed.

Prints, in one run, markdown tables of medians over --runs repetitions:

1. one-task experiment on N testbed hosts (default N = 1, 10, 30): wall time of
   `unicorn-ansible run` beside the hand-written mkdir/copy/run/fetch playbook
   (bench/e2e/handwritten.yml) and a trivial one-task playbook, same forks, SSH
   pipelining and ControlPersist, cold connections every time;
2. re-run: the same experiment again with unchanged requirements;
3. scale (--scale 100): wall time and the controller's peak memory (all its processes);
4. transfer: a task returning 100 MB, time to results on the controller (the run's
   time minus the same run whose task makes the 100 MB but returns only its size)
   beside `scp` of a 100 MB file from the same host.

Needs root (it brings up the testbed). Usage:
    .venv/bin/python bench/e2e_bench.py [--hosts 1 10 30] [--runs 3] [--scale 100] [--skip-transfer]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent / "e2e"
SCRIPTS = Path(sys.executable).parent
SSH_ARGS = "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=5 -o ServerAliveCountMax=3"


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants, MB."""
    children: Dict[int, List[int]] = {}
    rss: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(entry))
            rss[int(entry)] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 1e6


def measure(command: List[str], env: Dict[str, str], cwd: Path) -> Tuple[float, float, int]:
    """Wall seconds, peak MB of the whole process tree, exit code."""
    peak = [0.0]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_mb(process.pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode not in (0,):
        sys.stderr.write(f"warning: {' '.join(command[:3])} exited {process.returncode}: {err.decode()[-300:]}\n")
    return elapsed, peak[0], process.returncode


class Bench:
    def __init__(self, work: Path, runs: int) -> None:
        self.work = work
        self.runs = runs
        self.home = work / "home"
        self.env = dict(os.environ, UNICORN_ANSIBLE_HOME=str(self.home), ANSIBLE_HOST_KEY_CHECKING="False",
                        ANSIBLE_PIPELINING="True", ANSIBLE_SSH_ARGS=SSH_ARGS, ANSIBLE_PYTHON_INTERPRETER="auto_silent",
                        ANSIBLE_GATHERING="explicit")
        (work / "payload.py").write_text(
            "import json\nopen('result.json', 'w').write(json.dumps({'value': 42, 'pad': 'x' * 10000}))\n")
        shutil.copy(HERE / "handwritten.yml", work / "handwritten.yml")
        shutil.copy(HERE / "trivial.yml", work / "trivial.yml")
        self.counter = 0

    def cold(self, forks: int) -> Dict[str, str]:
        """Fresh ControlPersist sockets: every measurement starts with cold connections."""
        self.counter += 1
        control = self.work / f"cp{self.counter}"
        control.mkdir()
        return dict(self.env, ANSIBLE_SSH_CONTROL_PATH_DIR=str(control), ANSIBLE_FORKS=str(forks))

    def testbed(self, hosts: int) -> Path:
        subprocess.run([str(SCRIPTS / "unicorn-ansible"), "testbed", "down"], env=self.env, check=True,
                       capture_output=True)
        subprocess.run([str(SCRIPTS / "unicorn-ansible"), "testbed", "up", "--hosts", str(hosts)], env=self.env,
                       check=True, capture_output=True)
        return self.home / "testbed" / "inventory.ini"

    def down(self) -> None:
        subprocess.run([str(SCRIPTS / "unicorn-ansible"), "testbed", "down"], env=self.env, capture_output=True)

    def playbook(self, name: str, inventory: Path, forks: int) -> Tuple[float, float]:
        out = self.work / "fetched"
        out.mkdir(exist_ok=True)
        wall, peak, _ = measure([str(SCRIPTS / "ansible-playbook"), "-i", str(inventory), name, "-e",
                                 f"out_dir={out}"], self.cold(forks), self.work)
        return wall, peak

    def ours(self, experiment: Path, inventory: Path, forks: int, name: str) -> Tuple[float, float]:
        environment = self.cold(forks)  # also makes the run name unique
        wall, peak, code = measure([str(SCRIPTS / "unicorn-ansible"), "run", str(experiment), "-i", str(inventory),
                                    "--name", f"{name}-{self.counter}", "--forks", str(forks)], environment, self.work)
        if code != 0:
            raise SystemExit(f"unicorn-ansible run {experiment.name} failed (exit {code}); figures would be wrong")
        return wall, peak

    def median(self, function, *args) -> Tuple[float, float]:
        samples = [function(*args) for _ in range(self.runs)]
        return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, nargs="*", default=[1, 10, 30], help="host counts for the one-task table (none: skip it)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, nargs="*", default=[100], help="host counts for the scale table")
    parser.add_argument("--skip-transfer", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the end-to-end benchmark needs root (it brings up the testbed)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="unicorn-bench-") as scratch:
        bench = Bench(Path(scratch), args.runs)
        try:
            return run(bench, args)
        finally:
            bench.down()


def run(bench: Bench, args: argparse.Namespace) -> int:
    from importlib.metadata import version

    print(f"# unicorn-ansible end-to-end benchmark — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"ansible-core {version('ansible-core')}, Python {sys.version.split()[0]}, median of {args.runs}\n")
    experiment = HERE / "one_task.py"
    with_requirement = HERE / "with_requirement.py"
    rows = []
    rerun_rows = []
    for hosts in args.hosts:
        inventory = bench.testbed(hosts)
        trivial = bench.median(bench.playbook, "trivial.yml", inventory, hosts)
        hand = bench.median(bench.playbook, "handwritten.yml", inventory, hosts)
        ours = bench.median(bench.ours, experiment, inventory, hosts, f"one-task-{hosts}")
        first_runs, reruns = [], []
        for attempt in range(args.runs):
            bench.testbed(hosts)  # a fresh testbed: hosts have no environment yet
            first_runs.append(bench.ours(with_requirement, inventory, hosts, f"first-{hosts}-{attempt}"))
            reruns.append(bench.ours(with_requirement, inventory, hosts, f"again-{hosts}-{attempt}"))
        first = statistics.median(r[0] for r in first_runs)
        again = statistics.median(r[0] for r in reruns)
        rows.append((hosts, ours[0], hand[0], trivial[0]))
        rerun_rows.append((hosts, first, again))
    print("## One-task experiment, wall time (s)\n")
    print("| hosts | unicorn-ansible run | hand-written 4-task playbook | trivial 1-task playbook | ours / hand-written |")
    print("|---:|---:|---:|---:|---:|")
    for hosts, ours, hand, trivial in rows:
        print(f"| {hosts} | {ours:.2f} | {hand:.2f} | {trivial:.2f} | {ours / hand:.2f}× |")
    print("\n## Re-run with unchanged requirements: a one-task experiment with one requirement (s)\n")
    print("| hosts | first run | re-run | re-run / first |")
    print("|---:|---:|---:|---:|")
    for hosts, first, again in rerun_rows:
        print(f"| {hosts} | {first:.2f} | {again:.2f} | {again / first:.2f}× |")
    if args.scale:
        print("\n## Scale: wall time and controller peak memory\n")
        print("| hosts | unicorn-ansible run (s) | controller peak (MB) | MB per host |")
        print("|---:|---:|---:|---:|")
        for hosts in sorted(set([10, 30] + list(args.scale))):
            inventory = bench.testbed(hosts)
            wall, peak = bench.ours(experiment, inventory, min(hosts, 50), f"scale-{hosts}")
            print(f"| {hosts} | {wall:.2f} | {peak:.0f} | {peak / hosts:.1f} |")
    if not args.skip_transfer:
        inventory = bench.testbed(1)
        base = bench.median(bench.ours, HERE / "big_kept.py", inventory, 1, "base")[0]
        big = [bench.ours(HERE / "big_result.py", inventory, 1, f"big-{i}")[0] for i in range(args.runs)]
        big_time = statistics.median(big)
        address = "10.77.0.11"
        key = bench.home / "testbed" / "id_ed25519"
        ssh = ["-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR"]
        subprocess.run(["ssh", *ssh, f"root@{address}", "head -c 104857600 /dev/urandom > /root/big.bin"], check=True)
        scp = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(["scp", "-q", *ssh, f"root@{address}:/root/big.bin", str(bench.work / "big.bin")],
                           check=True)
            scp.append(time.perf_counter() - started)
        scp_time = statistics.median(scp)
        extra = max(big_time - base, 1e-6)
        print("\n## Transfer: a task returning 100 MB (s)\n")
        print("| run returning 100 MB | same 100 MB made, size returned | difference (transfer) | scp of 100 MB | "
              "our throughput / scp |")
        print("|---:|---:|---:|---:|---:|")
        print(f"| {big_time:.2f} | {base:.2f} | {extra:.2f} | {scp_time:.2f} | {scp_time / extra:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
