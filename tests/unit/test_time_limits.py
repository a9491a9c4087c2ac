"""The pipeline's time limit on the host's monotonic clock (issue 28, item 11): what the deployment used
is subtracted as its monotonic duration, so a wall-clock jump during the deployment changes nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from unicorn_ansible.node.__main__ import _time_left
from unicorn_ansible.node.deploy import deploy
from unicorn_ansible.node.protocol import DEPLOY_REPORT
from unicorn_ansible.node.wire import DeployReport, DeploySpec, NodeSpec

DAY = 86400.0


def _left(workdir: Path, report: dict[str, object], limit: float = 600.0) -> float | None:
    (workdir / DEPLOY_REPORT).write_text(json.dumps(report))
    return _time_left(str(workdir), NodeSpec(time_limit=limit))


def test_a_wall_clock_jump_of_a_day_during_the_deployment_leaves_the_pipeline_its_time(tmp_path: Path) -> None:
    now = time.time()
    # the wall clock jumped a day forward while it deployed; its monotonic duration says 2 s
    assert _left(tmp_path, {"ok": True, "started": now, "finished": now + DAY + 2, "duration": 2.0}) == 598.0
    # ... or backward
    assert _left(tmp_path, {"ok": True, "started": now, "finished": now - DAY, "duration": 3.5}) == 596.5


@pytest.mark.parametrize("finished", [DAY + 2, -DAY, -1.0])
def test_an_older_hosts_report_with_absurd_wall_clock_times_takes_nothing_off(tmp_path: Path, finished: float) -> None:
    """Without a duration (a report of an older host), wall-clock times that are negative or longer than
    the limit the deployment kept to are a jump: nothing is subtracted, never the whole limit."""
    now = time.time()
    assert _left(tmp_path, {"ok": True, "started": now, "finished": now + finished}) == 600.0
    assert _left(tmp_path, {"ok": True, "started": now, "finished": now + 10}) == 590.0  # plausible: kept


def test_a_duration_is_clamped_to_the_limit(tmp_path: Path) -> None:
    assert _left(tmp_path, {"ok": True, "started": 1.0, "finished": 2.0, "duration": 5000.0}) == 0.001
    assert _left(tmp_path, {"ok": True, "started": 1.0, "finished": 2.0}, limit=600) == 599.0


def test_the_deployment_records_its_monotonic_duration(tmp_path: Path) -> None:
    report = deploy(str(tmp_path), DeploySpec(node="n"))
    assert report.ok and report.duration is not None and 0.0 <= report.duration < 30
    kept = DeployReport.read(tmp_path / DEPLOY_REPORT)
    assert kept is not None and kept.duration == report.duration
    assert DeployReport.from_untrusted(kept.to_json(), "deploy-report.json").duration == report.duration
