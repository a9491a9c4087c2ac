#!/usr/bin/env python3
"""End-to-end benchmark: `unicorn-ansible run` beside plain Ansible on the local SSH testbed.

Prints, in one run, markdown tables of medians over --runs repetitions:

1. one-task experiment on N testbed hosts (default N = 1, 10, 30): wall time of
   `unicorn-ansible run` beside the hand-written mkdir/copy/run/fetch playbook
   (bench/e2e/handwritten.yml) and a trivial one-task playbook, same forks, SSH
   pipelining and ControlPersist, cold connections every time; with Mitogen installed,
   all three again with the mitogen_linear strategy (--no-mitogen skips them);
   the controller's memory in the same runs: peak PSS of the whole process tree
   (ours and the hand-written play, sampled every 0.1 s), per host;
   where the time goes: ours per phase (controller start, inventory, deploy, start + wait,
   fetch, load; from the run's ansible-runner events), the baselines per task (the
   profile_tasks-style callback bench/e2e/callback_plugins/task_times.py);
2. re-run: the same experiment again with unchanged requirements (--skip-rerun skips it);
3. scale (--scale 100): wall time and controller peak PSS, ours beside the hand-written play;
4. the embedded default: `unicorn-ansible run examples/hello.py` (no inventory: the local machine)
   beside `ansible-playbook` of a trivial one-task local play (bench/e2e/trivial_local.yml), whole
   processes (--skip-embedded skips it; --only-embedded runs nothing else, without root or testbed);
5. transfer: a task returning 100 MB, time to results on the controller (the run's
   time minus the same run whose task makes the 100 MB but returns only its size)
   beside `scp` of a 100 MB file from the same host; logged in as root, and as the
   non-root user `unicorn` with sudo (become) (--transfer-as).

Needs root (it brings up the testbed). Usage:
    .venv/bin/python bench/e2e_bench.py [--hosts 1 10 30] [--runs 3] [--scale 100] [--skip-transfer]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "e2e"
SCRIPTS = Path(sys.executable).parent
SSH_ARGS = "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=5 -o ServerAliveCountMax=3"


def _processes() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return children


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _runs_inventory(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"ansible-inventory" in command or b"inventory_list" in command  # the reader: ansible/inventory_list.py


def tree_sample(root: int) -> tuple[float, bool]:
    """PSS of a process and all its descendants (MB: pages shared between them counted once, as
    the machine holds them), and whether one of them is ansible-inventory."""
    children = _processes()
    total, inventory, stack = 0, False, [root]
    while stack:
        pid = stack.pop()
        total += _pss_kb(pid)
        inventory = inventory or _runs_inventory(pid)
        stack.extend(children.get(pid, []))
    return total / 1024, inventory


@dataclass
class Measured:
    """One command: wall seconds, peak PSS of its process tree (MB), exit code, when it was launched
    and exited (epoch seconds), and when an ansible-inventory below it was first and last seen."""

    wall: float
    peak: float
    code: int
    launched: float
    exited: float
    inventory: tuple[float, float] | None


def measure(command: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """Run ``command``, sampling its process tree every 0.1 s."""
    peak = [0.0]
    seen: list[float] = []
    launched = time.time()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pss, inventory = tree_sample(process.pid)
            peak[0] = max(peak[0], pss)
            if inventory:
                seen.append(time.time())
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode not in (0,):
        sys.stderr.write(f"warning: {' '.join(command[:3])} exited {process.returncode}: {err.decode()[-300:]}\n")
    return Measured(elapsed, peak[0], process.returncode, launched, launched + elapsed,
                    (seen[0], seen[-1]) if seen else None)


def _epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp).timestamp()


#: our run's phases by the action of the role's tasks (see roles/unicorn/tasks/); unicorn_node's
#: start + wait also fetches the results in the call that sees the pipeline over (before it: command
#: for start + wait, unicorn_fetch for the fetch)
PHASES = {"ansible.builtin.script": "deploy", "unicorn_deploy": "deploy", "ansible.builtin.command": "start + wait", "unicorn_node": "start + wait",
          "unicorn_fetch": "fetch"}
PHASE_ORDER = ["controller start", "deploy", "start + wait", "fetch", "load", "other", "inventory reader"]


def our_phases(run_dir: Path, measured: Measured) -> dict[str, float]:
    """Where a run's time went, from its ansible-runner events: controller start (launch to the first
    play, the inventory included), deploy,
    start + wait (one command starts the pipeline and waits for it in long polls), fetch (first start to
    last end over all hosts), load (the last event to exit: results loaded and shown), other (the rest);
    and, not in the sum, the inventory reader (seen running, sampled every 0.1 s: it runs while the
    controller loads its own modules, so it is part of the controller start)."""
    events = [json.loads(p.read_text()) for p in run_dir.glob("artifacts/*/job_events/*.json")]
    first = min((_epoch(e["created"]) for e in events if e["event"] == "playbook_on_start"), default=measured.launched)
    last = max((_epoch(e["created"]) for e in events), default=measured.exited)
    spans: dict[str, list[float]] = {}
    for event in events:
        data = event.get("event_data", {})
        phase = PHASES.get(data.get("task_action", ""))
        if phase and data.get("start") and data.get("end") and event["event"] != "runner_on_skipped":
            span = spans.setdefault(phase, [math.inf, -math.inf])
            span[0], span[1] = min(span[0], _epoch(data["start"])), max(span[1], _epoch(data["end"]))
    inventory = measured.inventory[1] - measured.inventory[0] + 0.1 if measured.inventory else 0.0
    phases = {"controller start": first - measured.launched, "load": measured.exited - last}
    phases.update({name: end - begin for name, (begin, end) in spans.items()})
    phases["other"] = measured.wall - sum(phases.values())
    phases["inventory reader"] = inventory
    return phases


def playbook_phases(times: Path, measured: Measured) -> dict[str, float]:
    """A baseline's time per task (task_times callback: first start to last end over all hosts),
    with its controller start (launch to the playbook's start) and end (last task to exit)."""
    data = json.loads(times.read_text())
    tasks = data["tasks"]
    phases = {"controller start": data["playbook_start"] - measured.launched}
    phases.update({task["name"]: task["end"] - task["start"] for task in tasks})
    phases["end"] = measured.exited - max((task["end"] for task in tasks), default=measured.exited)
    return phases


def median_phases(samples: list[dict[str, float]]) -> dict[str, float]:
    names = list(dict.fromkeys(name for sample in samples for name in sample))
    return {name: statistics.median(sample.get(name, 0.0) for sample in samples) for name in names}


@dataclass
class Sample:
    """One measured run: wall seconds, controller peak PSS (MB), where the time went."""

    wall: float
    peak: float
    phases: dict[str, float]


def mitogen_strategies() -> str | None:
    """Mitogen's strategy plugins folder, if Mitogen is installed."""
    try:
        import ansible_mitogen
    except ImportError:
        return None
    return str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")


class Bench:
    def __init__(self, work: Path, runs: int) -> None:
        self.work = work
        self.runs = runs
        self.home = work / "home"
        # byte code written and read as by a user's Python: without it (PYTHONDONTWRITEBYTECODE, set in
        # some sessions) an editable install compiles our modules at every start (~0.06 s), which an
        # installed package, compiled by pip like Ansible, never does
        environ = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        self.env = dict(environ, UNICORN_ANSIBLE_HOME=str(self.home), ANSIBLE_HOST_KEY_CHECKING="False",
                        ANSIBLE_PIPELINING="True", ANSIBLE_SSH_ARGS=SSH_ARGS, ANSIBLE_PYTHON_INTERPRETER="auto_silent",
                        ANSIBLE_GATHERING="explicit")
        (work / "payload.py").write_text(
            "import json\nopen('result.json', 'w').write(json.dumps({'value': 42, 'pad': 'x' * 10000}))\n")
        shutil.copy(HERE / "handwritten.yml", work / "handwritten.yml")
        shutil.copy(HERE / "trivial.yml", work / "trivial.yml")
        shutil.copy(HERE / "trivial_local.yml", work / "trivial_local.yml")
        self.counter = 0

    def cold(self, forks: int) -> dict[str, str]:
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

    def become_inventory(self, inventory: Path) -> Path:
        """The testbed's inventory logging in as the non-root user ``unicorn``, with sudo to root."""
        password = (self.home / "testbed" / "become_password").read_text().strip()
        text = inventory.read_text().replace(
            "ansible_user=root", f"ansible_user=unicorn\nansible_become=true\nansible_become_password={password}")
        target = self.work / "become.ini"
        target.write_text(text)
        return target

    def down(self) -> None:
        subprocess.run([str(SCRIPTS / "unicorn-ansible"), "testbed", "down"], env=self.env, capture_output=True)

    def playbook(self, name: str, inventory: Path | str, forks: int, strategy: str | None = None) -> Sample:
        out = self.work / "fetched"
        out.mkdir(exist_ok=True)
        times = self.work / f"times-{self.counter + 1}.json"
        environment = dict(self.cold(forks), ANSIBLE_CALLBACK_PLUGINS=str(HERE / "callback_plugins"),
                           ANSIBLE_CALLBACKS_ENABLED="task_times", BENCH_TASK_TIMES=str(times))
        if strategy:
            environment.update(ANSIBLE_STRATEGY=strategy, ANSIBLE_STRATEGY_PLUGINS=mitogen_strategies() or "")
        measured = measure([str(SCRIPTS / "ansible-playbook"), "-i", str(inventory), name, "-e", f"out_dir={out}"],
                           environment, self.work)
        return Sample(measured.wall, measured.peak, playbook_phases(times, measured))

    def ours(self, experiment: Path, inventory: Path | None, forks: int, name: str,
             strategy: str | None = None, scripts: Path = SCRIPTS) -> Sample:
        """``unicorn-ansible run`` of ``experiment`` (no inventory: the embedded default, the local machine);
        ``scripts``: the folder of the ``unicorn-ansible`` to run (another version's venv, for --baseline)."""
        environment = self.cold(forks)  # also makes the run name unique
        run_name = f"{name}-{self.counter}"
        command = [str(scripts / "unicorn-ansible"), "run", str(experiment), "--name", run_name, "--forks", str(forks)]
        command += (["-i", str(inventory)] if inventory else []) + (["--strategy", strategy] if strategy else [])
        measured = measure(command, environment, self.work)
        if measured.code != 0:
            raise SystemExit(f"unicorn-ansible run {experiment.name} failed (exit {measured.code}); "
                             "figures would be wrong")
        return Sample(measured.wall, measured.peak, our_phases(self.home / "runs" / run_name, measured))

    def median(self, function, *args, **options) -> Sample:
        return self.interleaved([(function, args, options)])[0]

    def interleaved(self, cases: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> list[Sample]:
        """Each case's median over ``runs`` rounds, the cases taking turns within a round: the
        machine's load changes within minutes, and ratios of runs taken side by side keep their meaning."""
        rounds = [[function(*args, **options) for function, args, options in cases] for _ in range(self.runs)]
        return [Sample(statistics.median(r[i].wall for r in rounds), statistics.median(r[i].peak for r in rounds),
                       median_phases([r[i].phases for r in rounds])) for i in range(len(cases))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, nargs="*", default=[1, 10, 30], help="host counts for the one-task table (none: skip it)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, nargs="*", default=[100], help="host counts for the scale table")
    parser.add_argument("--skip-transfer", action="store_true")
    parser.add_argument("--skip-rerun", action="store_true", help="skip the re-run table")
    parser.add_argument("--rerun-hosts", type=int, nargs="*", help="host counts for the re-run table (default: --hosts)")
    parser.add_argument("--transfer-as", choices=["root", "become", "both"], default="both",
                        help="the transfer case logs in as root, as the non-root user unicorn with sudo (become), "
                             "or both (default)")
    parser.add_argument("--no-mitogen", action="store_true",
                        help="skip the mitogen_linear columns (measured when Mitogen is installed)")
    parser.add_argument("--skip-embedded", action="store_true", help="skip the embedded default's table")
    parser.add_argument("--only-embedded", action="store_true",
                        help="only the embedded default's table (no testbed, no root needed)")
    parser.add_argument("--baseline", type=Path, metavar="VENV",
                        help="also run another version's unicorn-ansible (VENV/bin/unicorn-ansible, e.g. a worktree of "
                             "main) in the same rounds: before/after in one table, taken side by side")
    args = parser.parse_args()
    if args.only_embedded:
        with tempfile.TemporaryDirectory(prefix="unicorn-bench-") as scratch:
            return run(Bench(Path(scratch), args.runs), args)
    if os.geteuid() != 0:
        print("the end-to-end benchmark needs root (it brings up the testbed)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="unicorn-bench-") as scratch:
        bench = Bench(Path(scratch), args.runs)
        try:
            return run(bench, args)
        finally:
            bench.down()


def _phase_table(title: str, rows: list[tuple[int, Sample]], names: list[str]) -> None:
    print(f"\n### {title}\n")
    print("| hosts | " + " | ".join(names) + " | total |")
    print("|---:|" + "---:|" * (len(names) + 1))
    for hosts, sample in rows:
        print(f"| {hosts} | " + " | ".join(f"{sample.phases.get(n, 0.0):.2f}" for n in names) + f" | {sample.wall:.2f} |")


def one_task(bench: Bench, args: argparse.Namespace, strategy: str | None) -> None:
    """The one-task table beside the baselines, per-phase breakdowns, controller memory per host."""
    experiment = HERE / "one_task.py"
    rows: list[tuple[int, Sample, Sample, Sample, dict[str, Sample]]] = []
    baselines: dict[int, Sample] = {}
    for hosts in args.hosts:
        inventory = bench.testbed(hosts)
        cases = [(bench.playbook, ("trivial.yml", inventory, hosts), {}),
                 (bench.playbook, ("handwritten.yml", inventory, hosts), {}),
                 (bench.ours, (experiment, inventory, hosts, f"one-task-{hosts}"), {})]
        if args.baseline:
            cases.append((bench.ours, (experiment, inventory, hosts, f"baseline-{hosts}"),
                           {"scripts": args.baseline / "bin"}))
        trivial, hand, ours, *baseline = bench.interleaved(cases)
        if baseline:
            baselines[hosts] = baseline[0]
        mitogen = {}
        if strategy:
            samples = bench.interleaved([(bench.playbook, ("trivial.yml", inventory, hosts, strategy), {}),
                                         (bench.playbook, ("handwritten.yml", inventory, hosts, strategy), {}),
                                         (bench.ours, (experiment, inventory, hosts, f"mitogen-{hosts}", strategy), {})])
            mitogen = dict(zip(("trivial", "hand", "ours"), samples))
        rows.append((hosts, ours, hand, trivial, mitogen))
    print("## One-task experiment, wall time (s)\n")
    extra = " | ours, mitogen_linear | hand-written, mitogen_linear | trivial, mitogen_linear" if strategy else ""
    print("| hosts | unicorn-ansible run | hand-written 4-task playbook | trivial 1-task playbook | ours / hand-written "
          f"| ours / trivial{extra} |")
    print("|---:|---:|---:|---:|---:|---:|" + ("---:|" * 3 if strategy else ""))
    for hosts, ours, hand, trivial, mitogen in rows:
        cells = [f"{ours.wall:.2f}", f"{hand.wall:.2f}", f"{trivial.wall:.2f}", f"{ours.wall / hand.wall:.2f}×",
                 f"{ours.wall / trivial.wall:.2f}×"]
        cells += [f"{mitogen[k].wall:.2f}" for k in ("ours", "hand", "trivial") if k in mitogen]
        print(f"| {hosts} | " + " | ".join(cells) + " |")
    if baselines:
        print(f"\n## The same rounds: this version beside the baseline ({args.baseline})\n")
        print("| hosts | baseline | this version | baseline / trivial | this / trivial | baseline / hand-written | "
              "this / hand-written | baseline: peak MB | this: peak MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for hosts, ours, hand, trivial, _ in rows:
            base = baselines[hosts]
            print(f"| {hosts} | {base.wall:.2f} | {ours.wall:.2f} | {base.wall / trivial.wall:.2f}× | "
                  f"{ours.wall / trivial.wall:.2f}× | {base.wall / hand.wall:.2f}× | {ours.wall / hand.wall:.2f}× | "
                  f"{base.peak:.0f} | {ours.peak:.0f} |")
        _phase_table("baseline, where the time goes", sorted(baselines.items()), PHASE_ORDER)
    print("\n## Controller memory: peak PSS of the whole process tree (MB), same runs\n")
    print("| hosts | unicorn-ansible run | per host | hand-written playbook | per host | ours / hand-written |")
    print("|---:|---:|---:|---:|---:|---:|")
    for hosts, ours, hand, _, _ in rows:
        print(f"| {hosts} | {ours.peak:.0f} | {ours.peak / hosts:.1f} | {hand.peak:.0f} | {hand.peak / hosts:.1f} | "
              f"{ours.peak / hand.peak:.2f}× |")
    print("\n## Where the time goes (s, medians)")
    _phase_table("unicorn-ansible run", [(h, o) for h, o, _, _, _ in rows], PHASE_ORDER)
    hand_names = list(dict.fromkeys(n for _, _, hand, _, _ in rows for n in hand.phases))
    _phase_table("hand-written playbook (task_times callback)", [(h, p) for h, _, p, _, _ in rows], hand_names)
    trivial_names = list(dict.fromkeys(n for _, _, _, t, _ in rows for n in t.phases))
    _phase_table("trivial playbook (task_times callback)", [(h, t) for h, _, _, t, _ in rows], trivial_names)


def rerun(bench: Bench, args: argparse.Namespace) -> None:
    with_requirement = HERE / "with_requirement.py"
    print("\n## Re-run with unchanged requirements: a one-task experiment with one requirement (s)\n")
    print("| hosts | first run | re-run | re-run / first | trivial 1-task playbook | re-run / trivial |"
          + (" baseline re-run | baseline re-run / trivial |" if args.baseline else ""))
    print("|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.baseline else ""))
    breakdown: list[tuple[int, Sample]] = []
    for hosts in _rerun_hosts(args):
        inventory = bench.testbed(hosts)
        first_runs, reruns, baseline_reruns, trivials = [], [], [], []
        again_samples: list[Sample] = []
        for attempt in range(args.runs):
            bench.testbed(hosts)  # a fresh testbed: hosts have no environment yet
            first_runs.append(bench.ours(with_requirement, inventory, hosts, f"first-{hosts}-{attempt}").wall)
            trivials.append(bench.playbook("trivial.yml", inventory, hosts).wall)
            again_samples.append(bench.ours(with_requirement, inventory, hosts, f"again-{hosts}-{attempt}"))
            reruns.append(again_samples[-1].wall)
            if args.baseline:  # the same environment, already built: a re-run for it too
                baseline_reruns.append(bench.ours(with_requirement, inventory, hosts, f"again-base-{hosts}-{attempt}",
                                                  scripts=args.baseline / "bin").wall)
        first, again = statistics.median(first_runs), statistics.median(reruns)
        trivial = statistics.median(trivials)
        extra = ""
        if baseline_reruns:
            base = statistics.median(baseline_reruns)
            extra = f" {base:.2f} | {base / trivial:.2f}× |"
        print(f"| {hosts} | {first:.2f} | {again:.2f} | {again / first:.2f}× | {trivial:.2f} | {again / trivial:.2f}× |"
              + extra)
        breakdown.append((hosts, Sample(again, statistics.median(s.peak for s in again_samples),
                                        median_phases([s.phases for s in again_samples]))))
    _phase_table("unicorn-ansible run, re-run (s, medians)", breakdown, PHASE_ORDER)


def _rerun_hosts(args: argparse.Namespace) -> list[int]:
    return args.rerun_hosts if args.rerun_hosts is not None else args.hosts


def scale(bench: Bench, args: argparse.Namespace) -> None:
    experiment = HERE / "one_task.py"
    print("\n## Scale: wall time and controller peak memory (PSS of the process tree)\n")
    print("| hosts | unicorn-ansible run (s) | hand-written playbook (s) | ours: peak MB | per host | "
          "hand-written: peak MB | per host | memory ours / hand-written |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for hosts in sorted(set(args.scale)):
        inventory = bench.testbed(hosts)
        forks = min(hosts, 50)
        ours = bench.ours(experiment, inventory, forks, f"scale-{hosts}")
        hand = bench.playbook("handwritten.yml", inventory, forks)
        print(f"| {hosts} | {ours.wall:.2f} | {hand.wall:.2f} | {ours.peak:.0f} | {ours.peak / hosts:.1f} | "
              f"{hand.peak:.0f} | {hand.peak / hosts:.1f} | {ours.peak / hand.peak:.2f}× |")


def transfer(bench: Bench, args: argparse.Namespace) -> None:
    """A task returning 100 MB beside scp of 100 MB from the same host, as root and/or through become."""
    inventory = bench.testbed(1)
    address = "10.77.0.11"
    key = bench.home / "testbed" / "id_ed25519"
    ssh = ["-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "LogLevel=ERROR"]
    subprocess.run(["ssh", *ssh, f"root@{address}", "head -c 104857600 /dev/urandom > /root/big.bin"], check=True)
    scp = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(["scp", "-q", *ssh, f"root@{address}:/root/big.bin", str(bench.work / "big.bin")], check=True)
        scp.append(time.perf_counter() - started)
    scp_time = statistics.median(scp)
    print("\n## Transfer: a task returning 100 MB (s)\n")
    print("| login | run returning 100 MB | same 100 MB made, size returned | difference (transfer) | scp of 100 MB | "
          "our throughput / scp |")
    print("|---|---:|---:|---:|---:|---:|")
    modes = ["root", "become"] if args.transfer_as == "both" else [args.transfer_as]
    for mode in modes:
        chosen = inventory if mode == "root" else bench.become_inventory(inventory)
        base = bench.median(bench.ours, HERE / "big_kept.py", chosen, 1, f"base-{mode}").wall
        big = statistics.median(bench.ours(HERE / "big_result.py", chosen, 1, f"big-{mode}-{i}").wall
                                for i in range(args.runs))
        extra = max(big - base, 1e-6)
        label = "root" if mode == "root" else "unicorn + sudo (become)"
        print(f"| {label} | {big:.2f} | {base:.2f} | {extra:.2f} | {scp_time:.2f} | {scp_time / extra:.2f}× |")


def embedded(bench: Bench, baseline: Path | None = None) -> None:
    """The embedded default (no -i: the local machine) beside a trivial local play, whole processes."""
    hello = HERE.parent.parent / "examples" / "hello.py"
    cases = [(bench.playbook, ("trivial_local.yml", "localhost,", 1), {}), (bench.ours, (hello, None, 1, "hello"), {})]
    if baseline:
        cases.append((bench.ours, (hello, None, 1, "hello-baseline"), {"scripts": baseline / "bin"}))
    trivial, ours, *base = bench.interleaved(cases)
    print("\n## Embedded default: `unicorn-ansible run examples/hello.py` on the local machine (s)\n")
    print("| unicorn-ansible run | ansible-playbook, trivial local play | ours / trivial | ours: peak MB | "
          "trivial: peak MB |" + (" baseline | baseline / trivial | baseline: peak MB |" if base else ""))
    print("|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if base else ""))
    extra = f" {base[0].wall:.2f} | {base[0].wall / trivial.wall:.2f}× | {base[0].peak:.0f} |" if base else ""
    print(f"| {ours.wall:.2f} | {trivial.wall:.2f} | {ours.wall / trivial.wall:.2f}× | {ours.peak:.0f} | "
          f"{trivial.peak:.0f} |" + extra)
    _phase_table("unicorn-ansible run, embedded default", [(1, ours)] + ([(0, base[0])] if base else []), PHASE_ORDER)


def run(bench: Bench, args: argparse.Namespace) -> int:
    from importlib.metadata import version

    strategy = None if args.no_mitogen or not mitogen_strategies() else "mitogen_linear"
    mitogen = f", mitogen {version('mitogen')}" if strategy else ""
    print(f"# unicorn-ansible end-to-end benchmark — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"ansible-core {version('ansible-core')}{mitogen}, Python {sys.version.split()[0]}, median of {args.runs}\n")
    if not args.skip_embedded:
        embedded(bench, args.baseline)
    if args.only_embedded:
        return 0
    if args.hosts:
        one_task(bench, args, strategy)
    if not args.skip_rerun and _rerun_hosts(args):
        rerun(bench, args)
    if args.scale:
        scale(bench, args)
    if not args.skip_transfer:
        transfer(bench, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
