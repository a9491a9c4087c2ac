"""Campaigns on the local default inventory: every combination × repeat run exactly once (each
task counts its executions in a file outside the run folders), failed ones retried per
--retries, a sweep killed with -9 continued by the same command, two sweeps sharing one
campaign, bad parameters refused, the table and the report checked against what the tasks
returned (the report in headless Chromium)."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..browser import dom, screenshot
from .conftest import CLI, Env

EXPERIMENT = '''
import os, random, time
from unicorn_ansible import Experiment, Failure, Pipeline, Task

COUNT = {count!r}
SLEEP = {sleep!r}

class Measure(Task):
    def __init__(self, rate, size):
        self.rate, self.size = rate, size
        super().__init__(name="measure")

    def run(self):
        value = self.rate * 2 + random.random()
        with open(COUNT, "a") as counted:
            counted.write(f"{{self.rate}} {{self.size}} {{value!r}}\\n")
        if self.rate == 50 and self.size == "1M":
            return Failure("always fails at 50 1M")
        flaky = COUNT + ".flaky"
        if self.rate == 20 and self.size == "10M" and not os.path.exists(flaky):
            open(flaky, "w").close()
            return Failure("flaky the first time")
        time.sleep(SLEEP)
        return {{"throughput": value, "bytes": len(self.size)}}

def experiment(nodes, rate=10, size="1M", verbose=False):
    return Experiment().map(Pipeline().then(Measure(rate, size)), nodes.take(1))
'''

GRID = ["-p", "rate=10,20,50", "-p", "size=1M,10M"]


def _experiment(env: Env, sleep: float = 0.0) -> tuple[Path, Path]:
    count = env.root / "executions.txt"
    return env.write("exp.py", EXPERIMENT.format(count=str(count), sleep=sleep)), count


def _executions(count: Path) -> collections.Counter[tuple[int, str]]:
    lines = count.read_text().splitlines() if count.exists() else []
    return collections.Counter((int(line.split()[0]), line.split()[1]) for line in lines)


def _progress(env: Env, name: str) -> dict:
    return json.loads(env.cli("campaign", name, "--json", check=0).stdout)


def _by_parameters(progress: dict) -> dict[tuple[int, str], list[dict]]:
    grouped: dict[tuple[int, str], list[dict]] = collections.defaultdict(list)
    for entry in progress["combinations"]:
        grouped[(entry["parameters"]["rate"], entry["parameters"]["size"])].append(entry)
    return grouped


def test_a_sweep_runs_each_combination_once_retries_failures_and_reports(env: Env,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    experiment, count = _experiment(env)
    sweep = ["sweep", str(experiment), *GRID, "--repeat", "3", "--name", "grid", "--seed", "26"]
    done = env.cli(*sweep, check=1)  # 50/1M always fails: exit 1
    assert "18 runs: rate (3) × size (2), 3 repeat(s); order random (seed 26)" in done.stderr
    executions = _executions(count)
    # each combination × repeat once; 50/1M twice per repeat (--retries 1); 20/10M once more (its first failed)
    assert executions == {(10, "1M"): 3, (10, "10M"): 3, (20, "1M"): 3, (20, "10M"): 4, (50, "1M"): 6, (50, "10M"): 3}
    progress = _progress(env, "grid")
    assert (progress["total"], progress["done"], progress["failed"], progress["pending"]) == (18, 15, 3, 0)
    grouped = _by_parameters(progress)
    for entry in grouped[(50, "1M")]:
        assert entry["status"] == "failed" and entry["attempts"] == 2 and "always fails at 50 1M" in entry["error"]
        assert entry["runs"] == [f"grid-{entry['index']:04d}", f"grid-{entry['index']:04d}-2"]
    flaky = [e for e in grouped[(20, "10M")] if e["attempts"]]
    assert len(flaky) == 1 and flaky[0]["status"] == "done" and len(flaky[0]["runs"]) == 2
    assert sorted(e["repeat"] for e in grouped[(10, "1M")]) == [1, 2, 3]
    # every combination's run is an ordinary run, recording its parameters
    run = json.loads(env.cli("results", "grid-0001", "--json", check=0).stdout)
    assert run["parameters"] == {"rate": 10, "size": "1M", "verbose": False}

    # the same command again: nothing left to run; with --retries 2 the failed ones get one more run each
    env.cli(*sweep, check=1)
    assert _executions(count) == executions
    dry = env.cli(*sweep, "--retries", "2", "--dry-run", check=0)
    assert dry.stderr.count("3 run(s) would be made") == 1 and re.search(r"grid-00\d\d-3", dry.stdout)
    env.cli(*sweep, "--retries", "2", check=1)
    assert _executions(count)[(50, "1M")] == 9 and sum(_executions(count).values()) == sum(executions.values()) + 3

    # the table: parameter columns and values as the tasks returned them (the file they counted in)
    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(env.home))
    import unicorn_ansible

    frame = unicorn_ansible.load_campaign("grid").frame()
    assert list(frame.columns) == ["rate", "size", "verbose", "repeat", "run", "node", "task", "repetition", "field",
                                   "value", "error"]
    throughput = frame[frame["field"] == "throughput"]
    assert len(throughput) == 15 and set(throughput["node"]) == {"localhost"} and frame["rate"].dtype.kind == "i"
    returned = [(int(rate), size, float(value)) for rate, size, value in map(str.split, count.read_text().splitlines())]
    flaky_first = next(entry for entry in returned if entry[:2] == (20, "10M"))  # its Failure: no value in the table
    succeeded = collections.Counter(entry for entry in returned if entry[:2] != (50, "1M"))
    succeeded[flaky_first] -= 1
    assert collections.Counter(zip(throughput["rate"], throughput["size"], throughput["value"])) == +succeeded
    assert set(frame[frame["field"] == "bytes"].groupby("size")["value"].unique().map(tuple)) == {(2.0,), (3.0,)}
    failures = frame[frame["error"].notna()]
    assert set(zip(failures["rate"], failures["size"])) == {(50, "1M")} and len(failures) == 3
    assert all("always fails at 50 1M" in text for text in failures["error"])
    assert len(unicorn_ansible.load_campaign("grid").rows()) == len(frame)
    csv_lines = env.cli("campaign", "grid", "--csv", check=0).stdout.splitlines()
    assert csv_lines[0] == ",".join(frame.columns) and len(csv_lines) == len(frame) + 1

    # the report: a chart per measurement and swept parameter, each with its confidence band; links to runs
    output = env.root / "grid.html"
    env.cli("campaign", "grid", "--report", "-o", str(output), check=0)
    page = output.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    shown = dom(output, env.root / "chromium-profile")
    screenshot(output, env.root / "chromium-profile", "campaign-report.png", height=1400)
    charts = re.findall(r'<svg class="campaign-chart"[^>]*data-task="measure" data-field="(\w+)" '
                        r'data-parameter="(\w+)".*?</svg>', shown, flags=re.S)
    assert sorted(charts) == [("bytes", "rate"), ("bytes", "size"), ("throughput", "rate"), ("throughput", "size")]
    by_rate = re.search(r'data-field="throughput" data-parameter="rate".*?</svg>', shown, flags=re.S).group(0)
    assert by_rate.count('<g class="series"') == 2  # a series per size
    bands = re.findall(r'<polygon class="band" points="([^"]+)"', by_rate)
    assert len(bands) == 2
    for band in bands:  # an area, not a line: the repeats' values differ
        ys = {float(point.split(",")[1]) for point in band.split()}
        assert len(ys) > 2
    assert re.search(r"mean [\d.]+, 95% CI \[[\d.]+, [\d.]+\], n=3", by_rate)
    links = re.findall(r'<a class="run" href="([^"]+)">(grid-\d+(?:-\d)?)</a>', shown)
    assert len(links) == 18
    for href, name in links:
        assert (output.parent / href).resolve() == (env.home / "runs" / name / "report.html").resolve()
        assert (output.parent / href).is_file()


def test_a_sweep_killed_with_kill_9_is_continued_by_the_same_command(env: Env) -> None:
    experiment, count = _experiment(env, sleep=1.5)
    sweep = ["sweep", str(experiment), "-p", "rate=10,20", "-p", "size=1M,10M", "--repeat", "2", "--name", "crash",
             "--order", "grid"]  # the 3rd run is 20/1M's (its task sleeps), the 4th the flaky 20/10M
    process = subprocess.Popen(CLI + sweep, env=env.vars, cwd=env.root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while sum(_executions(count).values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # while the 3rd run's task sleeps: its run is left behind
    process.communicate(timeout=60)
    killed = sum(_executions(count).values())
    assert 3 <= killed < 8
    progress = _progress(env, "crash")
    assert progress["done"] < 8 and progress["running"] == 0  # its sweep is dead: nothing runs
    again = env.cli(*sweep, check=0)
    assert _executions(count) == {(10, "1M"): 2, (10, "10M"): 2, (20, "1M"): 2, (20, "10M"): 3}
    assert "its sweep died while it ran; collecting it" in again.stderr
    progress = _progress(env, "crash")
    assert progress["done"] == 8 and progress["failed"] == 0
    flaky = [e for e in progress["combinations"] if e["attempts"]]
    assert len(flaky) == 1 and flaky[0]["status"] == "done"
    assert all(len(e["runs"]) == 1 for e in progress["combinations"] if not e["attempts"])


def test_two_sweeps_at_once_share_the_campaign_and_never_run_one_combination_twice(env: Env) -> None:
    experiment, count = _experiment(env, sleep=0.3)
    sweep = ["sweep", str(experiment), "-p", "rate=10,20", "-p", "size=1M,10M", "--repeat", "3", "--name", "shared",
             "--retries", "0"]
    processes = [subprocess.Popen(CLI + sweep, env=env.vars, cwd=env.root, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    # 20/10M's first run fails and --retries 0 marks it failed: both exit 1 or 0 as they saw it
    assert all(process.returncode in (0, 1) for process in processes), outputs
    assert _executions(count) == {(10, "1M"): 3, (10, "10M"): 3, (20, "1M"): 3, (20, "10M"): 3}
    made = [int(re.search(r"this sweep made (\d+) run", err).group(1)) for _, err in outputs]
    assert sum(made) == 12 and min(made) >= 1, outputs
    progress = _progress(env, "shared")
    assert (progress["done"], progress["failed"]) == (11, 1)
    assert all(len(e["runs"]) == 1 for e in progress["combinations"])


def test_bad_parameters_are_one_line_errors_and_make_nothing(env: Env) -> None:
    experiment, _ = _experiment(env)
    cases = [(["run", str(experiment), "-p", "rat=10"], "has no parameter rat; its parameters: rate=10, size='1M'"),
             (["run", str(experiment), "-p", "rate=ten"], "-p rate=ten: rate takes an int"),
             (["run", str(experiment), "-p", "rate"], "give a parameter as NAME=VALUE"),
             (["compile", str(experiment), "-o", str(env.root / "out"), "-p", "verbose=maybe"], "verbose takes a bool"),
             (["sweep", str(experiment), "-p", "rate=10,x", "--name", "bad"], "-p rate=x: rate takes an int"),
             (["sweep", str(experiment), "-p", "sizes=1M", "--name", "bad"], "has no parameter sizes"),
             (["sweep", str(experiment), "-p", "rate=10,10", "--name", "bad"], "a value is given twice")]
    for args, message in cases:
        done = env.cli(*args, check=2)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    module_level = env.write("fixed.py", "from unicorn_ansible import Experiment\nexperiment = Experiment()\n")
    done = env.cli("run", str(module_level), "-p", "rate=10", check=2)
    assert "made when the file loads and takes no parameters" in done.stderr
    assert not (env.home / "runs").exists() or not list((env.home / "runs").iterdir())
    assert not (env.home / "campaigns" / "bad").exists() and not (env.root / "out").exists()


def test_run_p_is_recorded_and_shown_and_a_campaign_runs_from_python(env: Env,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    experiment, count = _experiment(env)
    env.cli("run", str(experiment), "-p", "rate=20", "-p", "size=10M", "--name", "typed", check=1)  # flaky's first
    record = json.loads((env.home / "runs" / "typed" / "run.json").read_text())
    assert record["parameters"] == {"rate": 20, "size": "10M", "verbose": False}
    assert env.results("typed")["parameters"] == {"rate": 20, "size": "10M", "verbose": False}
    env.cli("report", "typed", check=0)
    assert re.search(r'data-parameter="rate"><td>parameter rate</td><td>20</td>',
                     (env.home / "runs" / "typed" / "report.html").read_text())
    env.cli("compile", str(experiment), "-o", str(env.root / "compiled"), "-p", "verbose=yes", check=0)
    assert json.loads((env.root / "compiled" / "run.json").read_text())["parameters"]["verbose"] is True

    monkeypatch.setenv("UNICORN_ANSIBLE_HOME", str(env.home))
    sys.path.insert(0, str(env.root))
    try:
        from exp import experiment as function  # type: ignore[import-not-found]

        import unicorn_ansible

        campaign = unicorn_ansible.Client().sweep(function, {"rate": [10, 30], "size": "1M"}, name="python",
                                                  repeat=2, order="grid")
    finally:
        sys.path.remove(str(env.root))
        sys.modules.pop("exp", None)
    assert isinstance(campaign, unicorn_ansible.Campaign)
    assert campaign.runs() == ["python-0001", "python-0002", "python-0003", "python-0004"]
    frame = campaign.frame()
    throughput = frame[frame["field"] == "throughput"]
    assert sorted(zip(throughput["rate"], throughput["repeat"])) == [(10, 1), (10, 2), (30, 1), (30, 2)]
    assert all(20 <= v < 21 for v in throughput[throughput["rate"] == 10]["value"])
    assert campaign.progress()["done"] == 4
    with pytest.raises(unicorn_ansible.UsageError, match="parameters rate=x: rate takes an int"):
        unicorn_ansible.sweep(function, {"rate": ["x"]}, name="python-bad")


def test_a_sweep_stopped_by_ctrl_c_says_so_and_runs_the_interrupted_combination_anew(env: Env) -> None:
    experiment, count = _experiment(env, sleep=3)
    sweep = ["sweep", str(experiment), "-p", "rate=10,20", "--name", "stop", "--order", "grid"]
    process = subprocess.Popen(CLI + sweep, env=env.vars, cwd=env.root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _executions(count) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # while stop-0001's task sleeps
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "stopped by SIGINT" in stderr and "run the same sweep command again" in stderr
    first = _progress(env, "stop")["combinations"][0]
    assert (first["status"], first["attempts"], first["runs"]) == ("pending", 0, ["stop-0001"])
    env.cli(*sweep, check=0)
    first, second = _progress(env, "stop")["combinations"]
    assert (first["status"], first["attempts"], first["runs"]) == ("done", 0, ["stop-0001", "stop-0001-2"])
    assert second["runs"] == ["stop-0002"]
    assert _executions(count) == {(10, "1M"): 2, (20, "1M"): 1}  # the interrupted run's task, and its run anew
