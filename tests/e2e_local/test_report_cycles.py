"""The report of repeated measurements, in headless Chromium: a CyclePipeline's values charted
per repetition, its failures' text in view, its graph drawn with counts, its artifacts linked."""

from __future__ import annotations

import re

from ..browser import artifact_links, chart_points, dom, opened_text, outside_details, screenshot
from .conftest import Env

EXPERIMENT = '''
import os
from dataclasses import dataclass
from unicorn_ansible import CyclePipeline, Experiment, Failure, Task

@dataclass
class Probe:
    rtt_ms: float
    lost: int
    host: str

class Measure(Task):
    def run(self):
        count = len(self.previous_steps.get("count", []))  # ints: Probe results are not unpickled here
        if count == 6:
            return Failure(f"cycle {count}: the peer <refused> us")
        with open(os.path.join(self.artifacts_dir, f"trace-{count:02d}.txt"), "w") as handle:
            handle.write(f"trace of cycle {count}\\n")
        return Probe(rtt_ms=10 + count % 7, lost=count % 3, host="x")

class Count(Task):
    def run(self):
        return len(self.previous_steps.get(self.name, []))

def experiment(nodes):
    pipeline = CyclePipeline(cycles=12, tasks=[Measure(name="measure"), Count(name="count")], early_stopping=False)
    return Experiment().map(pipeline, nodes.take(2))
'''


def test_a_cycle_pipelines_report_charts_every_repetition_and_links_its_artifacts(env: Env) -> None:
    inventory = env.local_inventory(["cycle-a", "cycle-b"])
    env.write("cycles.py", EXPERIMENT)
    env.cli("run", "cycles.py", "-i", str(inventory), "--name", "cycles", check=1)
    page = env.root / "out" / "report.html"
    env.cli("report", "cycles", "-o", str(page), check=0)
    profile = env.root / "chromium-profile"
    shown = dom(page, profile)
    screenshot(page, profile, "report-cycles.png", height=2400)
    assert outside_details(shown, "cycle 6: the peer <refused> us")
    for node in ("cycle-a", "cycle-b"):
        assert chart_points(shown, "measure", "rtt_ms", node) == 11  # 12 cycles, one failed
        assert chart_points(shown, "count", "value", node) == 12
    assert 'data-outcome="mixed" data-runs="12"' in shown and "≤11×" in shown  # the loop, drawn with its counter
    links = artifact_links(shown)
    assert len(links) == 2 * 11
    href = next(href for text, href in links if text == "trace-03.txt" and "/cycle-b/" in href)
    assert "trace of cycle 3" in opened_text(page.parent / href, profile)
    assert page.stat().st_size < 400_000


def test_measurements_are_rows_and_a_dataframe_where_pandas_is(env: Env) -> None:
    import pytest

    from unicorn_ansible.results.load import load_results

    inventory = env.local_inventory(["rows-a"])
    env.write("cycles.py", EXPERIMENT)
    env.cli("run", "cycles.py", "-i", str(inventory), "--name", "rows", check=1)
    results = load_results(env.home / "runs" / "rows")
    rows = results.measurements()
    assert {(r["task"], r["field"]) for r in rows} == {("measure", "rtt_ms"), ("measure", "lost"), ("count", "value")}
    rtt = [r for r in rows if r["field"] == "rtt_ms"]
    assert [r["repetition"] for r in rtt] == [n for n in range(12) if n != 6] and rtt[0]["value"] == 10.0
    pandas = pytest.importorskip("pandas")
    frame = results.to_dataframe()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == len(rows)
    assert list(frame.columns) == ["node", "task", "repetition", "field", "value"]


LOOP = '''
from unicorn_ansible import ExecutionGraph, Experiment, Task

class Probe(Task):
    def run(self):
        return {"ms": 5.0 + len(self.previous_steps.get("probe", [])), "label": "not a number"}

class Pause(Task):
    def run(self):
        return "paused"

def experiment(nodes):
    graph = ExecutionGraph()
    probe, pause = Probe(name="probe"), Pause(name="pause")
    graph.graph.add_edge("root", probe)
    graph.graph.add_edge(probe, pause)
    graph.graph.add_edge(pause, probe, type="weak", counter=7)
    return Experiment().map(graph, nodes.take(1))
'''


def test_a_graph_loops_measurements_are_charted_per_repetition(env: Env) -> None:
    inventory = env.local_inventory(["loop-a"])
    env.write("loop.py", LOOP)
    env.cli("run", "loop.py", "-i", str(inventory), "--name", "loop", check=0)
    page = env.root / "loop.html"
    env.cli("report", "loop", "-o", str(page), check=0)
    shown = dom(page, env.root / "chromium-profile")
    assert chart_points(shown, "probe", "ms", "loop-a") == 8  # counter=7: the loop's source runs 8 times
    charted = re.findall(r'<svg class="chart"[^>]*data-task="([^"]*)" data-field="([^"]*)"', shown)
    assert charted == [("probe", "ms")]  # texts are not charted
