"""Build and run a benchmark pipeline with netunicorn's own executor (netunicorn-executor 0.4.2).

Runs inside the benchmark's netunicorn venv (bench/.venv-netunicorn), never with
unicorn_ansible importable. Two commands:

``build --kind seq|par --tasks N --workdir D``
    Build the pipeline with netunicorn's Task and Pipeline classes and cloudpickle it to
    ``D/netunicorn.execution_graph`` (the file name netunicorn's executor looks for in its
    current directory). The Task class is defined here, in ``__main__``, so cloudpickle
    ships it by value, as a user's experiment file would.

``run --workdir D --result R [--nofile L] [--poll-seconds S]``
    In ``D`` (its current directory, where netunicorn writes ``executor_local.log``):
    set RLIMIT_NOFILE to L if given, load the pickled graph, and run it with
    ``netunicorn.executor.get_local_executor(graph)()`` - netunicorn's documented offline
    mode: no gateway, no heartbeat, results not reported over HTTP. Writes a JSON summary
    to R. With ``--progress`` a thread writes progress (tasks finished, open fds) to
    R + ".progress" every 0.25 s, for runs a timeout may cut short.

    ``--poll-seconds S`` replaces the ``asyncio.sleep(1.0)`` netunicorn's main loop does
    whenever no task changed state by ``asyncio.sleep(S)``: a *patched* variant, used only
    where the benchmark says so, to see the rest of its cost (and its fd exhaustion) within
    the time budget.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
import traceback


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def build(kind: str, tasks: int, workdir: str) -> None:
    import cloudpickle
    from netunicorn.base.pipeline import Pipeline
    from netunicorn.base.task import Task

    class Trivial(Task):
        def __init__(self, number: int) -> None:
            super().__init__(name=f"t{number}")
            self.number = number

        def run(self):
            return self.number

    pipeline = Pipeline()
    if kind == "seq":
        for number in range(tasks):
            pipeline.then(Trivial(number))
    else:
        pipeline.then([Trivial(number) for number in range(tasks)])
    with open(os.path.join(workdir, "netunicorn.execution_graph"), "wb") as handle:
        cloudpickle.dump(pipeline, handle)


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def run(workdir: str, result_path: str, nofile: int | None, poll_seconds: float | None,
        with_progress: bool = False) -> int:
    os.chdir(workdir)
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    import asyncio

    import cloudpickle
    import netunicorn.executor.executor as nu_executor
    from netunicorn.executor import get_local_executor
    from returns.pipeline import is_successful

    if poll_seconds is not None:
        real_sleep = asyncio.sleep

        class _Asyncio:
            """asyncio as netunicorn's executor module sees it, with a shorter idle sleep."""

            def __getattr__(self, name):
                return getattr(asyncio, name)

            @staticmethod
            def sleep(delay, *args, **kwargs):
                return real_sleep(min(delay, poll_seconds), *args, **kwargs)

        nu_executor.asyncio = _Asyncio()

    summary = {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "patched_poll_seconds": poll_seconds}
    state = {"executor": None, "stop": False, "peak_fds": _open_fds(), "baseline_fds": _open_fds()}

    def finished_count() -> int:
        executor = state["executor"]
        if executor is None:
            return 0
        try:
            return sum(len(v) for v in list(executor.step_results.values()))
        except RuntimeError:  # dict changed size while we read it
            return -1

    def progress() -> None:
        while not state["stop"]:
            fds = _open_fds()
            state["peak_fds"] = max(state["peak_fds"], fds)
            done = finished_count()
            if done > 0 and "first" not in state:  # two points give the fds each finished task keeps
                state["first"] = {"done": done, "open_fds": fds}
            tmp = result_path + ".progress.tmp"
            try:
                with open(tmp, "w") as handle:
                    json.dump({"done": done, "open_fds": fds, "peak_fds": state["peak_fds"],
                               "baseline_fds": state["baseline_fds"], "first": state.get("first"),
                               "time": time.time() - summary.get("t0", time.time())}, handle)
                os.replace(tmp, result_path + ".progress")
            except OSError:  # out of file descriptors ourselves: try again later
                pass
            time.sleep(0.25)

    if with_progress:  # a thread in the executor's process: only where a timeout may cut the run short
        threading.Thread(target=progress, daemon=True).start()
    cpu0 = _cpu(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    summary["t0"] = time.time()
    error = None
    graph = None
    try:
        with open("netunicorn.execution_graph", "rb") as handle:
            graph = cloudpickle.load(handle)
        executor = get_local_executor(graph)
        state["executor"] = executor
        executor()
    except BaseException as exc:  # netunicorn catches its own errors; this is ours
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    elapsed = time.perf_counter() - t0
    # CPU time of the run: the executor's since t0, and every task process it waited for
    cpu = _cpu(resource.RUSAGE_SELF) - cpu0 + _cpu(resource.RUSAGE_CHILDREN)
    state["stop"] = True
    expected = [t for t in graph.graph.nodes if hasattr(t, "run")] if graph is not None else []
    executor = state["executor"]
    results = executor.execution_graph_results if executor is not None else None
    steps = dict(executor.step_results) if executor is not None else {}
    finished = sum(len(v) for v in steps.values())
    successes = sum(1 for v in steps.values() for r in v if is_successful(r))
    correct = all(
        len(steps.get(t.name, [])) == 1 and is_successful(steps[t.name][0]) and steps[t.name][0].unwrap() == t.number
        for t in expected
    ) if error is None else False
    log_tail = ""
    log_name = os.path.join(workdir, "executor_local.log")
    try:
        with open(log_name, "rb") as handle:
            handle.seek(max(0, os.path.getsize(log_name) - 4000))
            log_tail = handle.read().decode("utf-8", "replace")
    except OSError:
        pass
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    failure_reason = None
    if results is None:  # netunicorn logged the exception that ended its loop
        lines = [line for line in log_tail.splitlines() if line[:1].isalpha() and "Error" in line.split(":")[0]]
        failure_reason = lines[-1].strip() if lines else "no results (execution_graph_results is None)"
    elif not is_successful(results):
        failures = [r for v in steps.values() for r in v if not is_successful(r)]
        failure_reason = str(failures[-1].failure())[:300] if failures else "Failure without a failed task"
    summary.update(
        ok=error is None and results is not None and is_successful(results) and correct and finished == len(expected),
        tasks=len(expected),
        finished=finished,
        successes=successes,
        correct=correct,
        seconds=elapsed,
        result_type=type(results).__name__ if results is not None else None,
        error=error,
        failure_reason=failure_reason,
        log_tail=log_tail[-1500:],
        open_fds_at_end=_open_fds(),
        baseline_fds=state["baseline_fds"],
        peak_fds=state["peak_fds"],
        cpu_seconds=cpu,
        maxrss_self_kb=usage_self.ru_maxrss,
        maxrss_children_kb=usage_children.ru_maxrss,
    )
    with open(result_path, "w") as handle:
        json.dump(summary, handle)
    return 0 if summary["ok"] else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["build", "run"])
    parser.add_argument("--kind", choices=["seq", "par"])
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--result")
    parser.add_argument("--nofile", type=int)
    parser.add_argument("--poll-seconds", type=float)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    if args.command == "build":
        build(args.kind, args.tasks, args.workdir)
        return 0
    return run(args.workdir, args.result, args.nofile, args.poll_seconds, args.progress)


if __name__ == "__main__":
    sys.exit(main())
