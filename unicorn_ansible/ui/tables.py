"""The CLI's tables: one look for every command (rich, at least 100 columns wide)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def console() -> Any:
    from rich.console import Console

    return Console(width=max(100, Console().width))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
                out: Any = None) -> None:
    """Print ``rows`` (each cell shown with ``str``, as it is: never read as rich markup, never cut
    short, folded where too long, its control characters escaped: a cell may be a host's text) under
    ``columns``, on ``out`` or a new console."""
    from rich.table import Table
    from rich.text import Text

    from ..node.shown import printable_line

    table = Table(title=None if title is None else Text(printable_line(title)))
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(printable_line(str(cell))) for cell in row))
    (out or console()).print(table)
