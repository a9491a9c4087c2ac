"""Live progress: phases read from status files, plain lines on change, a rich table on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

from unicorn_ansible.engine.rundir import RunDir, write_json
from unicorn_ansible.ui.progress import Progress, describe


def _status(run_dir: Path, host: str, **status) -> None:
    write_json(RunDir(run_dir).node_status_file(host), status)


def test_phases_read_as_a_person_would() -> None:
    assert describe({}) == ("waiting", 0, 0)
    assert describe({"phase": "deploying"}) == ("deploying", 0, 0)
    assert describe({"phase": "running", "progress": {"stage": 2, "stages": 3, "done": 4, "total": 9}}) == (
        "running stage 2 of 3", 4, 9)
    assert describe({"phase": "executed", "progress": {"done": 9, "total": 9}}) == ("done", 9, 9)
    assert describe({"phase": "executed", "progress": {"done": 9, "total": 9, "failed": 1}})[0] == \
        "done, with failed tasks"
    assert describe({"phase": "unreachable"})[0] == "unreachable"
    assert describe({"phase": "deploy_failed"})[0] == "failed"


def test_plain_lines_once_per_change_with_timestamps(tmp_path: Path) -> None:
    stream = io.StringIO()
    progress = Progress(tmp_path, ["a", "b"], stream)
    progress.refresh()
    _status(tmp_path, "a", phase="deploying")
    progress.refresh()
    progress.refresh()  # nothing changed: nothing printed
    _status(tmp_path, "a", phase="executed", progress={"done": 2, "total": 2})
    _status(tmp_path, "b", phase="unreachable")
    progress.refresh()
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "a: waiting", "b: waiting", "a: deploying", "a: done (2/2 tasks)", "b: unreachable"]
    assert all(len(line.split(" ")[0]) == 8 and line[2] == ":" for line in lines)


def test_a_deployment_notice_is_shown_once_though_its_phase_went_by_unseen(tmp_path: Path) -> None:
    """A node deployed and started between two looks: the notice its host gave is still said, once."""
    stream = io.StringIO()
    progress = Progress(tmp_path, ["a", "b"], stream)
    _status(tmp_path, "a", phase="deploying")
    _status(tmp_path, "b", phase="deployed", deploy={"notice": "b runs as shell"})
    progress.refresh()
    _status(tmp_path, "a", phase="running", deploy={"notice": "a runs as shell"})
    _status(tmp_path, "b", phase="running", deploy={"notice": "b runs as shell"})
    progress.refresh()
    progress.refresh()
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == ["a: deploying", "b: deployed; notice: b runs as shell", "a: deployed; notice: a runs as shell",
                     "a: running", "b: running"]


def test_a_terminal_gets_a_table_and_an_overall_bar(tmp_path: Path) -> None:
    from rich.console import Console

    _status(tmp_path, "a", phase="running", progress={"stage": 1, "stages": 2, "done": 1, "total": 3})
    _status(tmp_path, "b", phase="executed", progress={"done": 3, "total": 3})
    _status(tmp_path, "d", phase="timed_out")
    progress = Progress(tmp_path, ["a", "b", "c", "d"], io.StringIO())
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    console.print(progress.renderable(progress.snapshot()))
    text = console.file.getvalue()
    assert "running stage 1 of 2" in text and "1/3" in text and "done" in text and "waiting" in text
    assert "timed out" in text and "2/4 node(s) finished" in text  # every final phase counts as finished


def test_start_and_stop_in_plain_mode(tmp_path: Path) -> None:
    stream = io.StringIO()
    _status(tmp_path, "a", phase="deploying")
    with Progress(tmp_path, ["a"], stream, interval=0.05) as progress:
        progress.handle({"event": "runner_on_ok"})
        _status(tmp_path, "a", phase="executed")
    assert "a: done" in stream.getvalue()


def test_a_graph_shows_tasks_done_without_a_total_it_cannot_know() -> None:
    from unicorn_ansible.ui.progress import tasks_text

    cycles = {"phase": "running", "progress": {"shape": "graph", "done": 20, "total": 1}}
    label, done, total = describe(cycles)
    assert tasks_text(done, total) == "20"  # not 20/1: a CyclePipeline's cycles decide as it runs
    assert tasks_text(*describe({"phase": "executed", "progress": {"done": 3, "total": 9}})[1:]) == "3/9"


def test_a_host_s_phase_and_notice_reach_the_live_view_escaped(tmp_path: Path) -> None:
    """Issue 28 item 3: a status file holds what a host reported; its control characters are
    escaped in the plain lines and in the terminal's table (a title, a cleared screen, a colour)."""
    from rich.console import Console

    bad = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\x9b"
    progress = Progress(tmp_path, ["a" + bad, "b"], io.StringIO())
    _status(tmp_path, "a" + bad, phase="deployed", deploy={"notice": "shell" + bad})
    _status(tmp_path, "b", phase="odd" + bad)
    lines = progress.lines(progress.snapshot())
    assert lines and not [line for line in lines if any(c in line for c in "\x1b\x07\x9b")], lines
    assert any("b: odd\\x1b]0;pwned\\x07" in line for line in lines), lines
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(progress.renderable(progress.snapshot()))
    assert not [c for c in "\x1b\x07\x9b" if c in out.getvalue()] and "\\x1b[2J" in out.getvalue()
