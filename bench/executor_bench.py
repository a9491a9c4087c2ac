"""Node-side executor benchmark: unicorn-ansible's executor beside netunicorn's (netunicorn-executor 0.4.2).

Run from the repository root with the project's venv:

    .venv/bin/python bench/executor_bench.py            # N = 3 runs per case, median
    .venv/bin/python bench/executor_bench.py --runs 5 --json figures.json

Cases (the issue "Performance", item 1):

1. a pipeline of --tasks (500) trivial tasks in sequence: ms per task, peak memory;
2. one stage of --tasks (500) parallel trivial tasks: ms per task, peak memory;
3. --ulimit-tasks (5,000) sequential tasks with RLIMIT_NOFILE = --nofile (1024) set in
   the executor's process: completes or not, and time.

Every run is a fresh process on a fresh work folder:

- ours: ``python -I -S bench/_run_ours.py`` with the executor bundle the execution play
  copies to hosts (the node package with cloudpickle and returns, built by unicorn_ansible.compiler.bundle) and nothing
  else importable; the pipeline is built here with unicorn_ansible.Pipeline and a Task
  subclass and written with serialize_for_node, like the compiler does for a host.
- netunicorn's: ``bench/.venv-netunicorn/bin/python bench/_run_netunicorn.py`` (the venv is
  created here if missing), pipeline built with netunicorn's own Task/Pipeline classes and
  run with ``netunicorn.executor.get_local_executor(graph)()``, its offline mode.

Time: measured inside the runner from the executor's entry point to its return (pipeline
loading included, interpreter start-up excluded); ms per task = that / number of tasks.
CPU: user + sys time of the executor process over the same span plus that of every task
process it waited for (getrusage), per task: less sensitive than wall time to other work
on the machine.
Memory: this process samples the executor's process tree (executor + task processes, via
/proc/PID/task/*/children) and sums Pss and Rss from /proc/PID/smaps_rollup; the peak of
each sum is reported. Rss counts pages that forked task processes share with the executor
once per process; Pss splits them, so it is the tree's real footprint. The sampler adapts its
interval (20 ms at least) so that it uses at most ~10% of one core. It also records the peak number of open
file descriptors of the executor process (/proc/PID/fd).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
NU_VENV = BENCH / ".venv-netunicorn"
NU_PYTHON = NU_VENV / "bin" / "python"
NU_REQUIREMENT = "netunicorn-executor==0.4.2"
SAMPLE_INTERVAL = 0.02  # seconds between two samples of a process tree, at least


# ---------------------------------------------------------------------------
# Set-up
# ---------------------------------------------------------------------------


def ensure_netunicorn_venv() -> dict[str, str]:
    """Create bench/.venv-netunicorn with netunicorn-executor 0.4.2 if it is missing; return versions."""
    probe = ("import importlib.metadata as m; import json; print(json.dumps({p: m.version(p) for p in "
             "('netunicorn-executor', 'netunicorn-base', 'cloudpickle', 'returns', 'networkx')}))")

    def versions() -> dict[str, str] | None:
        if not NU_PYTHON.exists():
            return None
        done = subprocess.run([str(NU_PYTHON), "-c", probe], capture_output=True, text=True)
        if done.returncode != 0:
            return None
        found = json.loads(done.stdout)
        return found if found.get("netunicorn-executor") == NU_REQUIREMENT.split("==")[1] else None

    found = versions()
    if found:
        return found
    print(f"creating {NU_VENV} with {NU_REQUIREMENT} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(NU_VENV)], check=True)
    done = subprocess.run([str(NU_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                           NU_REQUIREMENT], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"pip install {NU_REQUIREMENT} failed:\n{done.stdout}\n{done.stderr}")
    found = versions()
    if not found:
        sys.exit(f"{NU_VENV} has no working {NU_REQUIREMENT} after installing it")
    return found


def build_our_bundle(scratch: Path) -> Path:
    from unicorn_ansible.compiler.bundle import build_bundle

    return build_bundle(scratch / "bundle")


def write_our_pipeline(kind: str, tasks: int, workdir: Path) -> None:
    """pipeline.pkl and node.json for our executor, as the compiler writes them for a host."""
    from unicorn_ansible import Pipeline, Task
    from unicorn_ansible.model.experiment import serialize_for_node

    class Trivial(Task):  # a local class: cloudpickle ships it by value, like a user's task
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
    workdir.mkdir(parents=True)
    (workdir / "pipeline.pkl").write_bytes(serialize_for_node(pipeline))
    (workdir / "node.json").write_text("{}")


def write_netunicorn_pipeline(kind: str, tasks: int, workdir: Path) -> None:
    workdir.mkdir(parents=True)
    subprocess.run([str(NU_PYTHON), str(BENCH / "_run_netunicorn.py"), "build", "--kind", kind,
                    "--tasks", str(tasks), "--workdir", str(workdir)], check=True)


# ---------------------------------------------------------------------------
# Sampling the executor's process tree
# ---------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                out.extend(int(x) for x in handle.read().split())
        except OSError:
            continue
    return out


def tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(_children(pid))
    return pids


def _rollup(pid: int) -> tuple:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except OSError:
        pass
    return rss, pss


class Peaks:
    def __init__(self) -> None:
        self.rss_kb = 0
        self.pss_kb = 0
        self.fds = 0
        self.procs = 0
        self.samples = 0
        self.busy = 0.0

    def sample(self, root: int) -> None:
        began = time.monotonic()
        pids = tree(root)
        rss = pss = 0
        for pid in pids:
            r, p = _rollup(pid)
            rss += r
            pss += p
        try:
            fds = len(os.listdir(f"/proc/{root}/fd"))
        except OSError:
            fds = 0
        self.rss_kb = max(self.rss_kb, rss)
        self.pss_kb = max(self.pss_kb, pss)
        self.fds = max(self.fds, fds)
        self.procs = max(self.procs, len(pids))
        self.samples += 1
        self.busy += time.monotonic() - began


def run_measured(command: list[str], cwd: Path, timeout: float, log: Path) -> dict[str, Any]:
    """Run a runner in its own session, sample it until it exits or ``timeout`` passes (then kill it)."""
    peaks = Peaks()
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    began = time.monotonic()
    timed_out = False
    while process.poll() is None:
        busy = peaks.busy
        peaks.sample(process.pid)
        if time.monotonic() - began > timeout:
            timed_out = True
            _kill_tree(process.pid)
            break
        time.sleep(max(SAMPLE_INTERVAL, 9 * (peaks.busy - busy)))  # the sampler takes <= ~10% of one core
    process.wait()
    return {"returncode": process.returncode, "timed_out": timed_out, "wall": time.monotonic() - began,
            "peak_rss_mb": peaks.rss_kb / 1024, "peak_pss_mb": peaks.pss_kb / 1024, "peak_fds": peaks.fds,
            "peak_procs": peaks.procs, "samples": peaks.samples, "sampler_seconds": peaks.busy}


def _kill_tree(root: int) -> None:
    """SIGKILL a runner we started and every process below it: stopped first, so it starts no more."""
    try:
        os.kill(root, signal.SIGSTOP)
    except ProcessLookupError:
        return
    for pid in tree(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------
# One run of one case
# ---------------------------------------------------------------------------


def run_ours(scratch: Path, bundle: Path, kind: str, tasks: int, label: str, nofile: int | None,
             timeout: float) -> dict[str, Any]:
    workdir = scratch / label
    write_our_pipeline(kind, tasks, workdir)
    result = scratch / f"{label}.json"
    command = [sys.executable, "-I", "-S", str(BENCH / "_run_ours.py"), "--bundle", str(bundle),
               "--workdir", str(workdir), "--result", str(result)]
    if nofile:
        command += ["--nofile", str(nofile)]
    measured = run_measured(command, workdir, timeout, scratch / f"{label}.out")
    summary = json.loads(result.read_text()) if result.exists() else {}
    if not summary:  # killed: the executor's state.json says how far it got
        state = {}
        try:
            state = json.loads((workdir / "state.json").read_text())
        except (OSError, ValueError):
            pass
        summary = {"ok": False, "finished": state.get("done", 0), "tasks": tasks, "seconds": measured["wall"],
                   "error": "killed after the timeout" if measured["timed_out"] else
                   f"runner exited {measured['returncode']} without a summary; see {label}.out"}
    summary.update(measured)
    summary["tasks"] = tasks
    summary["limit"] = nofile
    return summary


def run_netunicorn(scratch: Path, kind: str, tasks: int, label: str, nofile: int | None, timeout: float,
                   poll_seconds: float | None = None, progress: bool = False) -> dict[str, Any]:
    workdir = scratch / label
    write_netunicorn_pipeline(kind, tasks, workdir)
    result = scratch / f"{label}.json"
    command = [str(NU_PYTHON), str(BENCH / "_run_netunicorn.py"), "run", "--workdir", str(workdir),
               "--result", str(result)]
    if nofile:
        command += ["--nofile", str(nofile)]
    if poll_seconds is not None:
        command += ["--poll-seconds", str(poll_seconds)]
    if progress:
        command += ["--progress"]
    measured = run_measured(command, workdir, timeout, scratch / f"{label}.out")
    summary = json.loads(result.read_text()) if result.exists() else {}
    if not summary:
        progress_data = {}
        try:
            progress_data = json.loads(Path(f"{result}.progress").read_text())
        except (OSError, ValueError):
            pass
        summary = {"ok": False, "finished": progress_data.get("done", 0), "seconds": progress_data.get("time"),
                   "open_fds_at_kill": progress_data.get("open_fds"),
                   "baseline_fds": progress_data.get("baseline_fds"),
                   "first_progress": progress_data.get("first"),
                   "error": "killed after the timeout" if measured["timed_out"] else
                   f"runner exited {measured['returncode']} without a summary; see {label}.out"}
    summary.update(measured)
    summary["tasks"] = tasks
    summary["limit"] = nofile
    return summary


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def ms_per_task(runs: list[dict[str, Any]]) -> float | None:
    good = [run for run in runs if run.get("ok")]
    if not good:
        return None
    return statistics.median(run["seconds"] * 1000 / run["tasks"] for run in good)


def cpu_ms_per_task(runs: list[dict[str, Any]]) -> float | None:
    good = [run for run in runs if run.get("ok") and run.get("cpu_seconds") is not None]
    if not good:
        return None
    return statistics.median(run["cpu_seconds"] * 1000 / run["tasks"] for run in good)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(theirs: float | None, ours: float | None) -> str:
    if theirs is None or ours is None or ours == 0:
        return "—"
    ratio = theirs / ours
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:,.2f}×" if ratio < 10 else f"{ratio:,.1f}×"


def _failures(runs: list[dict[str, Any]]) -> str:
    bad = [run for run in runs if not run.get("ok")]
    if not bad:
        return ""
    first = bad[0]
    why = first.get("failure_reason") or first.get("error") or first.get("status")
    return f" ({len(bad)}/{len(runs)} runs failed: {why})"


def args_nofile(run: dict[str, Any]) -> int:
    return int(run.get("limit") or run.get("nofile") or 0)


def describe_ulimit(run: dict[str, Any]) -> str:
    if run.get("ok"):
        return (f"completes: {run['tasks']:,} tasks in {run['seconds']:.1f} s ({run['seconds'] * 1000 / run['tasks']:.1f} "
                f"ms/task), peak {run['peak_fds']} open fds")
    done = run.get("finished") or 0
    if run.get("timed_out"):
        fds = run.get("open_fds_at_kill") or run.get("peak_fds")
        base = run.get("baseline_fds") or 0
        first = run.get("first_progress") or {}
        if first and done > first["done"]:
            per_task = (fds - first["open_fds"]) / (done - first["done"])
        else:  # a sequential pipeline: the tasks done and the one running
            per_task = (fds - base) / (done + 1)
        text = f"stopped after {run['wall']:.0f} s, {done} tasks done: {fds} open fds ({base} before the first task"
        if per_task >= 0.5:
            text += (f", +{per_task:.1f} per finished task, so it reaches {args_nofile(run)} after "
                     f"≈{(args_nofile(run) - base) / per_task:.0f} tasks")
        return text + ")"
    why = run.get("failure_reason") or run.get("error") or run.get("status")
    seconds = run.get("seconds")
    text = f"dies after {done:,} of {run['tasks']:,} tasks ({seconds:.1f} s): {why}; peak {run['peak_fds']:,} open fds"
    if "result_type" in run and run["result_type"] is None:  # netunicorn's summary
        text += "; no pipeline result (execution_graph_results is None): its final report has none of the finished tasks' results"
    elif run.get("status"):
        text += f"; executor status {run['status']}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the median is reported (default 3)")
    parser.add_argument("--tasks", type=int, default=500, help="tasks in the sequential and parallel cases")
    parser.add_argument("--netunicorn-seq-tasks", type=int, default=30,
                        help="tasks in netunicorn's sequential case (it sleeps 1 s per task; default 30)")
    parser.add_argument("--ulimit-tasks", type=int, default=5000)
    parser.add_argument("--nofile", type=int, default=1024, help="RLIMIT_NOFILE of the ulimit case")
    parser.add_argument("--ulimit-runs", type=int, default=1, help="runs of the ulimit case (default 1)")
    parser.add_argument("--netunicorn-ulimit-timeout", type=float, default=60,
                        help="seconds netunicorn's (as shipped) ulimit case may run before it is stopped "
                             "(default 60; ~270 lets it reach its file descriptor limit)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds any other run may take")
    parser.add_argument("--no-patched", action="store_true",
                        help="skip the runs of netunicorn with its 1 s idle sleep cut to 1 ms")
    parser.add_argument("--no-netunicorn", action="store_true", help="measure only ours")
    parser.add_argument("--json", type=Path, help="also write every run's raw figures here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (work folders, logs)")
    args = parser.parse_args()

    began = time.monotonic()
    versions = {} if args.no_netunicorn else ensure_netunicorn_venv()
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="executor-bench-"))
    raw: dict[str, list[dict[str, Any]]] = {}

    def record(case: str, run: dict[str, Any]) -> None:
        raw.setdefault(case, []).append(run)
        state = "ok" if run.get("ok") else "FAILED" if not run.get("timed_out") else "stopped (timeout)"
        print(f"  {case} run {len(raw[case])}: {state}, {run.get('finished')}/{run['tasks']} tasks, "
              f"{(run.get('seconds') or 0):.2f} s, peak pss {run['peak_pss_mb']:.1f} MB, rss {run['peak_rss_mb']:.1f} MB, "
              f"fds {run['peak_fds']}", file=sys.stderr, flush=True)

    try:
        bundle = build_our_bundle(scratch)
        n = args.tasks
        for i in range(args.runs):
            record("ours_seq", run_ours(scratch, bundle, "seq", n, f"ours-seq-{i}", None, args.timeout))
            record("ours_par", run_ours(scratch, bundle, "par", n, f"ours-par-{i}", None, args.timeout))
        for i in range(args.ulimit_runs):
            record("ours_ulimit", run_ours(scratch, bundle, "seq", args.ulimit_tasks, f"ours-ulimit-{i}",
                                           args.nofile, args.timeout))
        if not args.no_netunicorn:
            m = args.netunicorn_seq_tasks
            for i in range(args.runs):
                record("nu_seq", run_netunicorn(scratch, "seq", m, f"nu-seq-{i}", None, args.timeout))
                record("nu_par", run_netunicorn(scratch, "par", n, f"nu-par-{i}", None, args.timeout))
            for i in range(args.ulimit_runs):
                record("nu_ulimit", run_netunicorn(scratch, "seq", args.ulimit_tasks, f"nu-ulimit-{i}", args.nofile,
                                                   args.netunicorn_ulimit_timeout, progress=True))
            if not args.no_patched:
                for i in range(args.runs):
                    record("nu_patched_seq", run_netunicorn(scratch, "seq", n, f"nu-patched-seq-{i}", None,
                                                            args.timeout, poll_seconds=0.001))
                for i in range(args.ulimit_runs):
                    record("nu_patched_ulimit", run_netunicorn(scratch, "seq", args.ulimit_tasks,
                                                               f"nu-patched-ulimit-{i}", args.nofile, args.timeout,
                                                               poll_seconds=0.001))
    finally:
        if args.keep:
            print(f"scratch folder kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    loads = (load_before, os.getloadavg()[0])
    print(report(args, raw, versions, time.monotonic() - began, loads))
    if args.json:
        args.json.write_text(json.dumps({"versions": versions, "runs": raw}, indent=1, default=str))
    ours_ok = all(run.get("ok") for key in ("ours_seq", "ours_par", "ours_ulimit") for run in raw.get(key, []))
    return 0 if ours_ok else 1


def report(args: argparse.Namespace, raw: dict[str, list[dict[str, Any]]], versions: dict[str, str],
           elapsed: float, loads: tuple) -> str:
    ours_seq, ours_par = raw.get("ours_seq", []), raw.get("ours_par", [])
    nu_seq, nu_par = raw.get("nu_seq", []), raw.get("nu_par", [])
    nu_label = f"netunicorn-executor {versions.get('netunicorn-executor', '0.4.2')}"
    n, m = args.tasks, args.netunicorn_seq_tasks
    lines = []
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    lines.append(f"## Node-side executor benchmark — {datetime.date.today().isoformat()}")
    lines.append("")
    lines.append(f"Machine: {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}; "
                 f"{args.runs} runs per case (median), ulimit case {args.ulimit_runs} run(s); "
                 f"RLIMIT_NOFILE {soft} except in the ulimit case. "
                 + (f"netunicorn-base {versions.get('netunicorn-base')}, cloudpickle {versions.get('cloudpickle')} "
                    f"in its venv. " if versions else "")
                 + f"Whole benchmark: {elapsed:.0f} s; 1-minute load average {loads[0]:.2f} before, "
                 f"{loads[1]:.2f} after (other work on the machine makes every figure slower and noisier).")
    lines.append("")
    lines.append(f"| case | unicorn-ansible | {nu_label} | ratio (netunicorn ÷ ours) |")
    lines.append("|---|---|---|---|")

    def row(case: str, ours: float | None, theirs: float | None, digits: int = 1, note_ours: str = "",
            note_theirs: str = "") -> None:
        lines.append(f"| {case} | {_fmt(ours, digits)}{note_ours} | {_fmt(theirs, digits)}{note_theirs} | "
                     f"{_ratio(theirs, ours)} |")

    seq_note = f" ({m} tasks)" if nu_seq and m != n else ""
    row(f"{n} sequential tasks: ms per task", ms_per_task(ours_seq), ms_per_task(nu_seq), 2,
        _failures(ours_seq), (f" ({m} tasks measured: ~1 s each)" if seq_note else "") + _failures(nu_seq))
    row(f"{n} sequential tasks: CPU ms per task (user + sys, executor + tasks)", cpu_ms_per_task(ours_seq),
        cpu_ms_per_task(nu_seq), 2, note_theirs=seq_note)
    row(f"{n} sequential tasks: peak MB, Σ PSS of executor + tasks", _median(ours_seq, "peak_pss_mb"),
        _median(nu_seq, "peak_pss_mb"), note_theirs=seq_note)
    row(f"{n} sequential tasks: peak MB, Σ RSS of executor + tasks", _median(ours_seq, "peak_rss_mb"),
        _median(nu_seq, "peak_rss_mb"), note_theirs=seq_note)
    row(f"{n} sequential tasks: executor process max RSS, MB", _kb_median(ours_seq), _kb_median(nu_seq),
        note_theirs=seq_note)
    row(f"{n} parallel tasks (one stage): ms per task", ms_per_task(ours_par), ms_per_task(nu_par), 2,
        _failures(ours_par), _failures(nu_par))
    row(f"{n} parallel tasks: CPU ms per task (user + sys, executor + tasks)", cpu_ms_per_task(ours_par),
        cpu_ms_per_task(nu_par), 2)
    row(f"{n} parallel tasks: peak MB, Σ PSS of executor + tasks", _median(ours_par, "peak_pss_mb"),
        _median(nu_par, "peak_pss_mb"))
    row(f"{n} parallel tasks: peak MB, Σ RSS of executor + tasks", _median(ours_par, "peak_rss_mb"),
        _median(nu_par, "peak_rss_mb"))
    row(f"{n} parallel tasks: executor process max RSS, MB", _kb_median(ours_par), _kb_median(nu_par))
    row(f"{n} parallel tasks: executor's peak open fds", _median(ours_par, "peak_fds"), _median(nu_par, "peak_fds"), 0)
    ours_ulimit = raw.get("ours_ulimit", [])
    nu_ulimit = raw.get("nu_ulimit", [])
    lines.append(f"| {args.ulimit_tasks:,} sequential tasks, ulimit -n {args.nofile} | "
                 f"{'; '.join(describe_ulimit(r) for r in ours_ulimit) or '—'} | "
                 f"{'; '.join(describe_ulimit(r) for r in nu_ulimit) or '—'} | "
                 f"{_ulimit_ratio(ours_ulimit, nu_ulimit)} |")
    patched_seq, patched_ulimit = raw.get("nu_patched_seq", []), raw.get("nu_patched_ulimit", [])
    if patched_seq or patched_ulimit:
        lines.append("")
        lines.append("netunicorn patched (not as shipped): its main loop's `asyncio.sleep(1.0)` when no task "
                     "changed state cut to 1 ms, to see the rest of its per-task cost and to reach its file "
                     "descriptor limit within the time budget:")
        lines.append("")
        lines.append(f"| case | unicorn-ansible | {nu_label}, 1 ms idle sleep | ratio (netunicorn ÷ ours) |")
        lines.append("|---|---|---|---|")
        if patched_seq:
            row(f"{n} sequential tasks: ms per task", ms_per_task(ours_seq), ms_per_task(patched_seq), 2,
                note_theirs=_failures(patched_seq))
            row(f"{n} sequential tasks: CPU ms per task", cpu_ms_per_task(ours_seq), cpu_ms_per_task(patched_seq), 2)
            row(f"{n} sequential tasks: peak MB, Σ PSS", _median(ours_seq, "peak_pss_mb"),
                _median(patched_seq, "peak_pss_mb"))
        if patched_ulimit:
            lines.append(f"| {args.ulimit_tasks:,} sequential tasks, ulimit -n {args.nofile} | "
                         f"{'; '.join(describe_ulimit(r) for r in ours_ulimit) or '—'} | "
                         f"{'; '.join(describe_ulimit(r) for r in patched_ulimit)} | "
                         f"{_ulimit_ratio(ours_ulimit, patched_ulimit)} |")
    lines.append("")
    seq_ms, par_ms = ms_per_task(ours_seq), ms_per_task(ours_par)
    ulimit_ok = bool(ours_ulimit) and all(r.get("ok") for r in ours_ulimit)

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**NOT met**"

    lines.append("Targets for unicorn-ansible:")
    lines.append(f"- ≤ 5 ms per sequential task: {_fmt(seq_ms, 2)} ms — {verdict(seq_ms is not None and seq_ms <= 5)}")
    lines.append(f"- ≤ 2 ms per task in a {n}-task parallel stage: {_fmt(par_ms, 2)} ms — "
                 f"{verdict(par_ms is not None and par_ms <= 2)}")
    lines.append(f"- {args.ulimit_tasks:,} sequential tasks with ulimit -n {args.nofile} complete: "
                 f"{'yes' if ulimit_ok else 'no'} — {verdict(ulimit_ok)}")
    return "\n".join(lines)


def _kb_median(runs: list[dict[str, Any]]) -> float | None:
    value = _median(runs, "maxrss_self_kb")
    return None if value is None else value / 1024


def _ulimit_ratio(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> str:
    if not ours or not theirs or not all(r.get("ok") for r in ours):
        return "—"
    ours_ms = statistics.median(r["seconds"] * 1000 / r["tasks"] for r in ours)
    if all(r.get("ok") for r in theirs):
        return _ratio(statistics.median(r["seconds"] * 1000 / r["tasks"] for r in theirs), ours_ms)
    return "only ours completes"


if __name__ == "__main__":
    sys.exit(main())
