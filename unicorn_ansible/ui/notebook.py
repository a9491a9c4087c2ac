"""Results in Jupyter: ``RunResults._repr_html_``'s table, a row per node (its status coloured,
its error and notice, every task's result as a bounded preview), every text escaped."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from ..results.convert import view_repr
from .colours import status_colour

if TYPE_CHECKING:  # pragma: no cover
    from ..results.model import RunResults

#: characters of a result a cell shows
CELL_CHARS = 300


def _notice_html(notice: str | None) -> str:
    return f"<br><i>notice: {escape(notice)}</i>" if notice else ""


def results_table(results: RunResults) -> str:
    """The run's results as an HTML table."""
    rows = []
    for result in results.nodes:
        tasks = "<br>".join(
            f"<code>{escape(name)}</code>: {escape(view_repr(value)[:CELL_CHARS])}"
            for name, values in result.tasks.items() for value in values)
        rows.append(
            f"<tr><td>{escape(result.executor_id)}</td><td style='color:{status_colour(result.status)}'>"
            f"{escape(result.status)}</td><td>{escape(result.error or '')}{_notice_html(result.notice)}</td>"
            f"<td style='text-align:left'>{tasks}</td></tr>")
    return (f"<p><b>run {escape(results.name)}</b> ({escape(results.status)})</p><table><thead><tr><th>node</th>"
            f"<th>status</th><th>error</th><th>results</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
