"""Listing and copying a run's artifacts (``unicorn-ansible artifacts``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import RunError, UsageError
from ..node.protocol import artifact_folder
from ..node.shown import printable_line
from ..results.artifacts import Artifact, human_size, safe_parts
from ..results.load import RunResults


def select(results: RunResults, node: str | None, task: str | None) -> list[Artifact]:
    """The run's artifacts, of one node and one task if asked; an error when nothing matches."""
    chosen = [a for n in results if node is None or node in (n.executor_id, n.node) for a in n.artifacts
              if task is None or a.task == task]
    if not chosen:
        where = " ".join(f"--{k} {v}" for k, v in (("node", node), ("task", task)) if v)
        raise UsageError(f"run {results.name} has no artifacts{' for ' + where if where else ''}; "
                           "tasks leave files in their artifacts folder ($UNICORN_ARTIFACTS) or declare "
                           "them with artifacts=[...]")
    return chosen


def shown(text: str) -> str:
    """A name as a terminal shows it: bytes that are not UTF-8 as escapes, control characters escaped."""
    return printable_line(text)


#: the columns of the artifacts table
COLUMNS = ("node", "task", "path", "size", "sha256", "where")


def rows(artifacts: list[Artifact]) -> list[tuple[str, ...]]:
    """The artifacts as rows of the table (:data:`COLUMNS`), names as a terminal shows them, a
    sha256 by its first 12 digits (``--json`` has them all)."""
    table: list[tuple[str, ...]] = []
    for a in artifacts:
        where = a.file if a.file else f"left on the host at {a.source}: {a.left}"
        table.append((a.node, shown(a.task or "(pipeline)"), shown(a.path), human_size(a.size), (a.sha256 or "-")[:12],
                      shown(where)))
    return table


def copy_to(run_dir: Path, artifacts: list[Artifact], output: Path) -> int:
    """Copy the artifacts that came home to ``output/<node>/<task>/<path>``; return how many."""
    copied = 0
    for a in artifacts:
        if not a.file:
            continue
        try:
            parts = safe_parts(a.path)
        except ValueError as exc:  # a hand-edited or crafted index
            raise RunError(f"artifact {shown(a.path)!r} of node {a.node}: its path is {exc}; "
                           "not copied (the run folder's artifacts index was changed)") from None
        target = output.joinpath(a.node, artifact_folder(a.task), *parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / a.file, target)
        copied += 1
    return copied
