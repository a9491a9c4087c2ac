"""The CLI's tables show what they are given as it is: text that looks like rich markup (an error's
``[Errno 2]``, a flag's ``[/]``, a notice) is neither read as styles nor an error."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from unicorn_ansible.engine.rundir import RunDir, write_json
from unicorn_ansible.ui.progress import Progress
from unicorn_ansible.ui.tables import print_table


def test_cells_and_titles_are_shown_as_they_are() -> None:
    out = Console(file=io.StringIO(), width=120)
    print_table(("node", "error"), [("h1", "[Errno 2] no such file"), ("h2", "a [/] b"), ("h3", "[bold]x[/bold]")],
                "run [red]r[/red]", out)
    text = out.file.getvalue()
    assert "[Errno 2] no such file" in text and "a [/] b" in text and "[bold]x[/bold]" in text
    assert "run [red]r[/red]" in text


def test_the_live_table_shows_a_notice_as_it_is(tmp_path: Path) -> None:
    write_json(RunDir(tmp_path).node_status_file("a"), {"phase": "deployed", "deploy": {"notice": "ran as [/] shell"}})
    progress = Progress(tmp_path, ["a"], io.StringIO())
    out = Console(file=io.StringIO(), width=120)
    out.print(progress.renderable(progress.snapshot()))
    assert "deployed; notice: ran as [/] shell" in out.file.getvalue()
