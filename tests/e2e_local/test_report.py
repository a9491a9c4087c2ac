"""The HTML report, loaded in headless Chromium (Debian's chromium): what a person looks for is
in view (values, failure text, why a node stopped, its time limits), the rest a click away
(requirement output, a task's log)."""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

from ..browser import chart_points, dom, outside_details, screenshot
from .conftest import Env

EXPERIMENT = '''
import time
from unicorn_ansible import Experiment, Failure, Pipeline, Task

class Nap(Task):
    requirements = ["echo requirement-said-$((6 * 7))"]

    def __init__(self, seconds, name):
        self.seconds = seconds
        super().__init__(name=name)
    def run(self):
        time.sleep(self.seconds)
        return self.seconds

class Breaks(Task):
    def run(self):
        print("breaks is about to raise", flush=True)
        raise RuntimeError("<b>not bold</b>")

class Huge(Task):
    """Values of megabytes, over what the report loads: shown by their previews."""
    def run(self):
        return Failure("huge failure " + "y" * 2_000_000) if self.name == "huge-failure" else "huge " + "x" * 2_000_000

def experiment(nodes):
    pipeline = (Pipeline(early_stopping=False)
                .then(Nap(0.2, "warm-up"))
                .then([Nap(0.3, "lane-one"), Nap(0.4, "lane-two"), Breaks(name="<script>alert(1)</script>"),
                       Huge(name="huge-value"), Huge(name="huge-failure")])
                .then(Nap(0.1, "cool-down")))
    return Experiment().map(pipeline, nodes.take(2))
'''


def _row(page_dom: str, task: str) -> str:
    """The task table's row of ``task`` (its name as HTML escapes it)."""
    found = re.search(rf'<tr class="task" data-task="{re.escape(html.escape(task))}">(.*?)</tr>', page_dom, flags=re.S)
    assert found, f"no row of task {task}"
    return found.group(1)


def test_the_report_shows_every_node_and_task_in_a_browser(env: Env) -> None:
    inventory = env.local_inventory(["report-a", "report-b"])
    env.write("report.py", EXPERIMENT)
    env.cli("run", "report.py", "-i", str(inventory), "--name", "reported", "--task-timeout", "45", check=1)
    output = env.root / "report.html"
    env.cli("report", "reported", "-o", str(output), check=0)
    page = output.read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing to fetch: it opens offline
    assert "http://" not in page and "https://" not in page
    shown = dom(output, env.root / "chromium-profile")
    screenshot(output, env.root / "chromium-profile", "report.png")
    for text in ("report-a", "report-b", "warm-up", "lane-one", "lane-two", "cool-down", "deployment"):
        assert text in shown, text
    assert "<script>alert" not in shown
    # in view without a click: the failure's text, a value, why each node stopped, its time limits
    assert outside_details(shown, "<b>not bold</b>")
    assert re.search(r'<td class="value">\s*0\.3\s*</td>', _row(shown, "lane-one"))
    assert outside_details(shown, "failed: a task failed")
    assert outside_details(shown, "task timeout: 45 s")
    # values of megabytes: their previews, and the page stays small
    assert re.search(r'<td class="value">\s*huge x{100}', _row(shown, "huge-value"))
    assert outside_details(shown, "huge failure yyyyyyyyyy")
    assert output.stat().st_size < 200_000
    # a click away: the requirement's output and the failing task's log
    requirement = re.search(r"<details><summary>output</summary><pre>([^<]*)</pre></details>", shown)
    assert requirement and "requirement-said-42" in requirement.group(1)
    assert not outside_details(shown, "requirement-said-42")
    log = re.search(r"<details><summary>log</summary><pre>([^<]*)</pre>", _row(shown, "<script>alert(1)</script>"))
    assert log and "breaks is about to raise" in log.group(1)
    # the whole log is linked, relative to the report (it moves with the run folder)
    hrefs = re.findall(r'<li><a href="([^"]*)">&lt;script&gt;alert\(1\)&lt;/script&gt; log</a></li>', shown)
    assert len(hrefs) == 2 and not any(":" in href for href in hrefs)
    assert "breaks is about to raise" in (output.parent / unquote(html.unescape(hrefs[0]))).read_text()
    # the same task on many nodes: a chart across the nodes, a point each
    for node in ("report-a", "report-b"):
        assert chart_points(shown, "lane-two", "value", node) == 1
