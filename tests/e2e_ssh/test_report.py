"""The report of a CyclePipeline of 50 repetitions on 3 testbed hosts, in headless Chromium."""

from __future__ import annotations

from ..browser import artifact_links, chart_points, dom, opened_text, outside_details, screenshot
from .conftest import Lab

EXPERIMENT = '''
import os, socket, time
from unicorn_ansible import CyclePipeline, Experiment, Failure, Task

class Connect(Task):
    """Times a TCP connection attempt to a peer's sshd; fails on one cycle, on purpose."""
    def __init__(self, peer):
        self.peer = peer
        super().__init__(name="connect")

    def run(self):
        cycle = len(self.previous_steps.get("cycle", []))
        if cycle == 17:
            return Failure(f"cycle 17 on {socket.gethostname()}: connection to {self.peer} refused (on purpose)")
        start = time.perf_counter()
        with socket.create_connection((self.peer, 22), timeout=5):
            pass
        elapsed = (time.perf_counter() - start) * 1000
        with open(os.path.join(self.artifacts_dir, f"cycle-{cycle:02d}.txt"), "w") as handle:
            handle.write(f"{socket.gethostname()} cycle {cycle}: {elapsed:.3f} ms\\n")
        return {"connect_ms": elapsed, "cycle": cycle}

class Cycle(Task):
    def run(self):
        return len(self.previous_steps.get(self.name, []))

def experiment(nodes):
    hosts = nodes.take(3)
    experiment = Experiment()
    for number, node in enumerate(hosts):
        peer = hosts[(number + 1) % 3]["unicorn_address"]
        experiment.append(node, CyclePipeline(cycles=50, tasks=[Connect(peer), Cycle(name="cycle")],
                                              early_stopping=False))
    return experiment
'''


def test_the_report_of_50_repetitions_on_3_hosts(lab: Lab) -> None:
    inventory = lab.inventory("cycles")
    (lab.root / "cycles.py").write_text(EXPERIMENT)
    lab.cli("run", "cycles.py", "-i", str(inventory), "--name", "cycles", check=1)
    page = lab.root / "cycles-report.html"
    lab.cli("report", "cycles", "-o", str(page), check=0)
    profile = lab.root / "chromium-profile"
    shown = dom(page, profile)
    screenshot(page, profile, "report-testbed-cycles.png", height=3000)
    for host in ("h1", "h2", "h3"):
        assert outside_details(shown, f"cycle 17 on {host}: connection to ")
        assert chart_points(shown, "connect", "connect_ms", host) == 49
        assert chart_points(shown, "cycle", "value", host) == 50
    assert shown.count('data-outcome="mixed" data-runs="50"') == 3 and "≤49×" in shown
    links = artifact_links(shown)
    assert len(links) == 3 * 49
    href = next(href for text, href in links if text == "cycle-03.txt" and "/h2/" in href)
    assert "h2 cycle 3: " in opened_text(page.parent / href, profile)
