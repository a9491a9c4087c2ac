"""Run a benchmark pipeline with unicorn-ansible's node-side executor, as a host runs it.

Started by executor_bench.py as ``python -I -S bench/_run_ours.py --bundle B --workdir D
--result R [--nofile L]``: no site-packages, so nothing but the standard library and the
executor bundle B (the node package as unicorn_node, cloudpickle, returns) is importable
- unicorn_ansible is not, like on a host. ``D`` holds ``pipeline.pkl`` (written with
``unicorn_ansible.model.experiment.serialize_for_node``) and ``node.json`` (``{}``).

Sets RLIMIT_NOFILE to L if given, then runs the executor's own command line entry point,
``unicorn_node.__main__.main(["run", "--workdir", D])``, timed from that call to its return (which
includes loading the pipeline). Reads the work folder back to check that every task
finished with Success(its number), and writes a JSON summary to R.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--nofile", type=int)
    args = parser.parse_args()
    if args.nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
    sys.path.insert(0, args.bundle)
    # the bundle's node package
    from unicorn_node.__main__ import main as node_main
    from unicorn_node.files import read_json
    from unicorn_node.journal import iter_records, results_by_stage
    from unicorn_node.outcome import loads_result
    from unicorn_node.protocol import JOURNAL, STATE

    summary = {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
               "unicorn_ansible_importable": "unicorn_ansible" in sys.modules}
    cpu0 = _cpu(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    error = None
    rc = None
    try:
        rc = node_main(["run", "--workdir", args.workdir])
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    elapsed = time.perf_counter() - t0
    # CPU time of the run: the executor's since t0, and every task process it waited for
    cpu = _cpu(resource.RUSAGE_SELF) - cpu0 + _cpu(resource.RUSAGE_CHILDREN)
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    state = read_json(os.path.join(args.workdir, STATE)) or {}
    correct = False
    finished = successes = 0
    check_error = None
    try:
        records = list(iter_records(os.path.join(args.workdir, JOURNAL)))
        finished = len(records)
        successes = sum(1 for record in records if record.successful)
        values = [result.unwrap() for stage in results_by_stage(records, loads_result)
                  for result in (stage if isinstance(stage, list) else [stage])]
        correct = values == list(range(state.get("total", -1)))
    except Exception as exc:  # reading the results back failed: report it, it is a finding
        check_error = f"{type(exc).__name__}: {exc}"
    summary.update(
        ok=error is None and rc == 0 and state.get("status") == "finished" and bool(state.get("success")) and correct,
        rc=rc,
        status=state.get("status"),
        tasks=state.get("total"),
        finished=finished,
        successes=successes,
        correct=correct,
        check_error=check_error,
        seconds=elapsed,
        error=error or state.get("error"),
        open_fds_at_end=len(os.listdir("/proc/self/fd")),
        cpu_seconds=cpu,
        maxrss_self_kb=usage_self.ru_maxrss,
        maxrss_children_kb=usage_children.ru_maxrss,
    )
    with open(args.result, "w") as handle:
        json.dump(summary, handle)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
