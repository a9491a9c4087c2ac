"""Every status word is shown: the terminal colours each final phase, the report and a notebook's
table each node outcome (a new word without its colour would show as a failure)."""

from __future__ import annotations

from unicorn_ansible.results.status import FINAL_PHASES, NodeStatus
from unicorn_ansible.ui.colours import STATUS_COLOURS
from unicorn_ansible.ui.progress import _COLOURS


def test_every_final_phase_has_its_terminal_colour() -> None:
    assert set(_COLOURS) == set(FINAL_PHASES.values())


def test_every_node_outcome_has_its_colour() -> None:
    assert set(STATUS_COLOURS) == set(NodeStatus)
