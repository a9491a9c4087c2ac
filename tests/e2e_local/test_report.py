"""The HTML report, loaded in headless Chromium (Debian's chromium)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Env

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

EXPERIMENT = '''
import time
from unicorn_ansible import Experiment, Pipeline, Task

class Nap(Task):
    def __init__(self, seconds, name):
        self.seconds = seconds
        super().__init__(name=name)
    def run(self):
        time.sleep(self.seconds)
        return self.seconds

class Breaks(Task):
    def run(self):
        raise RuntimeError("<b>not bold</b>")

def experiment(nodes):
    pipeline = (Pipeline(early_stopping=False)
                .then(Nap(0.2, "warm-up"))
                .then([Nap(0.3, "lane-one"), Nap(0.4, "lane-two"), Breaks(name="<script>alert(1)</script>")])
                .then(Nap(0.1, "cool-down")))
    return Experiment().map(pipeline, nodes.take(2))
'''


def test_the_report_shows_every_node_and_task_in_a_browser(env: Env) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("the report test needs Debian's chromium: apt-get install chromium (scripts/test.sh does)")
    inventory = env.local_inventory(["report-a", "report-b"])
    env.write("report.py", EXPERIMENT)
    env.cli("run", "report.py", "-i", str(inventory), "--name", "reported", check=1)
    output = env.root / "report.html"
    env.cli("report", "reported", "-o", str(output), check=0)
    html = output.read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "http://" not in html and "https://" not in html  # nothing to fetch: it opens offline
    profile = env.root / "chromium-profile"
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", output.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    for text in ("report-a", "report-b", "warm-up", "lane-one", "lane-two", "cool-down", "deployment",
                 "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;b&gt;not bold&lt;/b&gt;"):
        assert text in dom, text
    assert "<script>alert" not in dom
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={screenshot}",
                    "--window-size=1400,1000", output.as_uri()], capture_output=True, timeout=120)
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
