"""How the views colour status words: a node's outcome in the report and a notebook's table, a
task's outcome on the report's timeline, a final phase on the terminal (defined once each)."""

from __future__ import annotations

from ..node.protocol import TaskKind
from ..results.status import NodeStatus

#: how the report and a notebook's results table colour a node's outcome
STATUS_COLOURS: dict[str, str] = {NodeStatus.OK: "#2da44e", NodeStatus.FAILED: "#cf222e", NodeStatus.DEPLOY_FAILED: "#cf222e",
                                  NodeStatus.EXECUTION_FAILED: "#cf222e", NodeStatus.UNREACHABLE: "#8250df",
                                  NodeStatus.TIMED_OUT: "#bf8700", NodeStatus.CANCELLED: "#6e7781", NodeStatus.NOT_RUN: "#6e7781"}
#: a colour for a word not above (a new one shows as a failure)
UNKNOWN_COLOUR = "#cf222e"

#: a task's bar by how it ended; the deployment's bar; a task known only from a progress report
TASK_COLOURS: dict[str, str] = {TaskKind.OK: "#2da44e", TaskKind.FAILURE: "#cf222e", TaskKind.CRASH: "#8250df",
                                TaskKind.TIMEOUT: "#bf8700", TaskKind.UNPICKLABLE: "#cf222e",
                                TaskKind.CANCELLED: "#6e7781", "deploy": "#0969da", "reported": "#57606a"}

#: how a final phase (as a person reads it, results/status.py's FINAL_PHASES) is shown on a terminal
TERMINAL_COLOURS: dict[str, str] = {"done": "green", "failed": "red", "unreachable": "magenta", "cancelled": "yellow",
                                    "timed out": "yellow"}


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, UNKNOWN_COLOUR)
