#!/usr/bin/env python3
"""Controller scale check: does anything in the controller grow faster than the number of nodes?

Issue "Performance" asks that nothing in the controller grows quadratically with 300 nodes of
100 tasks each. This runs a real 100-task pipeline once on the local machine (the embedded
default), then clones that node's run folder into runs of N nodes (default 30, 100, 300) and
times, per node, the controller pieces that see every node:

- result loading: ``load_results`` with values (what ``run`` shows) and without (the report);
- the progress display: one refresh (every node's status file read, the changed lines made);
- the collector (``unicorn_collector``, the callback plugin in ansible-playbook): every long-poll
  answer of every node (``v2_runner_retry`` with its newly finished tasks), then the final one.

A figure per node that stays flat from 30 to 300 nodes is linear; one that grows with N is not.
No root, no testbed. Usage: .venv/bin/python bench/scale_bench.py [--nodes 30 100 300] [--tasks 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent


def real_run(home: Path, tasks: int) -> Path:
    """A finished one-node run of ``tasks`` sequential tasks on the local machine."""
    os.environ["UNICORN_ANSIBLE_HOME"] = str(home)
    from unicorn_ansible import Experiment, Pipeline, Task, run

    class Step(Task):
        def run(self) -> dict[str, Any]:
            return {"step": self.name, "values": list(range(20))}

    pipeline = Pipeline()
    for number in range(tasks):
        pipeline = pipeline.then(Step(name=f"step-{number:03d}"))
    results = run(Experiment().map(pipeline, [_local_node()]), name="scale-source")
    assert results.success, results
    return results.run_dir


def _local_node() -> Any:
    from unicorn_ansible.inventory import load_inventory

    return load_inventory(None).nodes().take(1)[0]


def clone(source: Path, target: Path, nodes: int) -> list[str]:
    """``source`` (one node, ``localhost``) as a run of ``nodes`` nodes named h0001...; returns their names."""
    hosts = [f"h{number:04d}" for number in range(1, nodes + 1)]
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("artifacts", "nodes", "files"))
    for host in hosts:
        shutil.copytree(source / "nodes" / "localhost", target / "nodes" / host)
        shutil.copytree(source / "project" / "files" / "nodes" / "localhost", target / "project" / "files" / "nodes" / host,
                        ignore=shutil.ignore_patterns("*.pyz"))
    record = json.loads((target / "run.json").read_text())
    record.update(hosts=hosts, name=target.name)
    (target / "run.json").write_text(json.dumps(record))
    return hosts


def _seconds(function: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_loading(run_dir: Path) -> tuple[float, float]:
    from unicorn_ansible.results.load import load_results

    with_values = _seconds(lambda: load_results(run_dir))
    headers = _seconds(lambda: load_results(run_dir, with_values=False))
    return with_values, headers


def time_progress(run_dir: Path, hosts: list[str]) -> float:
    import io

    from unicorn_ansible.ui.progress import Progress

    progress = Progress(run_dir, hosts, io.StringIO())

    def refresh() -> None:
        progress._seen.clear()  # every line changed: the most work one refresh does
        progress.refresh()

    return _seconds(refresh)


def _result(host: str, step: str, state: dict[str, Any]) -> Any:
    return SimpleNamespace(_host=SimpleNamespace(get_name=lambda: host), _task=SimpleNamespace(vars={"unicorn_step": step}),
                           _result={"stdout": json.dumps(state), "rc": 0})


def time_collector(run_dir: Path, hosts: list[str], tasks: int, polls: int = 10) -> float:
    """Every host's ``polls`` long-poll answers (``tasks`` / ``polls`` new tasks each), then its final answer."""
    sys.path.insert(0, str(run_dir / "project" / "callback_plugins"))
    import unicorn_collector

    from unicorn_ansible.engine.rundir import RunDir

    for host in hosts:  # a fresh status per node, as at the start of the execution play
        (RunDir(run_dir).node_status_file(host)).write_text(json.dumps({"host": host, "phase": "deployed",
                                                                          "events": []}))
    collector = unicorn_collector.CallbackModule()
    collector.run = RunDir(run_dir)
    per_poll = max(1, tasks // polls)
    started = time.perf_counter()
    for poll in range(polls):
        for host in hosts:
            new = [{"seq": seq, "name": f"step-{seq:03d}", "kind": "ok", "started": 1.0, "finished": 2.0}
                   for seq in range(poll * per_poll, (poll + 1) * per_poll)]
            collector.v2_runner_retry(_result(host, "run", {"status": "running", "done": (poll + 1) * per_poll,
                                                            "total": tasks, "new": new}))
    for host in hosts:
        collector.v2_runner_on_ok(_result(host, "run", {"status": "finished", "done": tasks, "total": tasks, "new": []}))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[30, 100, 300])
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unicorn-scale-") as scratch:
        source = real_run(Path(scratch) / "home", args.tasks)
        print(f"# Controller scale check — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python "
              f"{sys.version.split()[0]}, {args.tasks} tasks per node; 1-minute load average {os.getloadavg()[0]:.1f}\n")
        print("| nodes | load_results with values: ms per node | without values (report): ms per node | "
              "progress refresh: ms per node | collector, 10 long polls + the last: ms per node |")
        print("|---:|---:|---:|---:|---:|")
        for nodes in args.nodes:
            target = Path(scratch) / "home" / "runs" / f"scale-{nodes}"
            hosts = clone(source, target, nodes)
            with_values, headers = time_loading(target)
            progress = time_progress(target, hosts)
            collector = time_collector(target, hosts, args.tasks)
            print(f"| {nodes} | {with_values / nodes * 1000:.2f} | {headers / nodes * 1000:.2f} | "
                  f"{progress / nodes * 1000:.3f} | {collector / nodes * 1000:.2f} |", flush=True)
            shutil.rmtree(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
