"""A large run's report (100 nodes, 10,000 task results): written fast, small, rendered by
headless Chromium in seconds. The run folder is made here, as the engine would leave it."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from returns.result import Failure, Success

from unicorn_ansible.engine.rundir import RunDir, write_json
from unicorn_ansible.node.journal import append_record
from unicorn_ansible.node.outcome import dumps_result, preview
from unicorn_ansible.node.wire import TaskRecord
from unicorn_ansible.ui.report import write_report

from ..browser import chart_points, dom

NODES, RUNS = 100, 100


def _journal(path: Path, node: int) -> None:
    with open(path, "ab") as journal:
        for seq in range(RUNS):
            result = Failure(f"probe {seq} lost") if seq == 50 else Success({"ms": 10.0 + (seq * node) % 17, "seq": seq})
            data = dumps_result(result)
            header = {"seq": seq, "name": "probe", "stage": 0, "index": 0, "stage_size": 1,
                      "kind": "ok" if seq != 50 else "failure", "type": type(result).__name__,
                      "preview": preview(result), "start": 1000.0 + seq, "end": 1000.5 + seq,
                      "log": f"logs/{seq:05d}-probe.log", "log_dropped": 0}
            append_record(journal, TaskRecord(**header, payload_len=len(data)), io.BytesIO(data), len(data))


def _large_run(root: Path) -> RunDir:
    run = RunDir(root / "large")
    hosts = [f"node-{n:03d}" for n in range(NODES)]
    run.create_record({"name": "large", "hosts": hosts, "status": "finished", "created": time.time(), "versions": {}})
    for number, host in enumerate(hosts):
        folder = run.node_dir(host)
        folder.mkdir(parents=True)
        write_json(folder / "state.json", {"status": "finished", "shape": "graph", "done": RUNS, "total": RUNS,
                                           "failed": 1, "not_run": []})
        write_json(run.node_status_file(host), {"phase": "executed", "prepared": True})
        _journal(folder / "journal", number)
    return run


def test_a_report_of_100_nodes_and_10000_results_is_small_and_quick(tmp_path: Path) -> None:
    run = _large_run(tmp_path)
    page = tmp_path / "large.html"
    began = time.monotonic()
    write_report(run.path, page)
    written = time.monotonic() - began
    began = time.monotonic()
    shown = dom(page, tmp_path / "profile")
    rendered = time.monotonic() - began
    size = page.stat().st_size
    print(json.dumps({"write_s": round(written, 2), "chromium_s": round(rendered, 2), "bytes": size}))
    assert written < 20 and rendered < 15 and size < 3_000_000  # measured: ~4 s, ~3 s, 2.25 MB on 2 busy cores
    assert shown.count('class="task"') == NODES and "probe 50 lost" in shown
    assert chart_points(shown, "probe", "ms", "node-007") == 0  # 10,000 values: lines, not dots
    assert shown.count('<g class="series"') == 2 * NODES  # fields ms and seq, a series per node
