"""The controller's status words, defined once: a node's phase during a run, and its outcome.

The executor's own statuses (``state.json``) and the kinds of task outcome are the
node side's, in ``unicorn_ansible.node.protocol``; how each word is shown (its colour) is the
views', in ``unicorn_ansible.ui.colours``.
"""

from __future__ import annotations

from ..node.protocol import Word


class Phase(Word):
    """Where a node is in a run: ``phase`` in ``nodes/<node>/status.json``, written by the callback plugin."""

    CONNECTING = "connecting"
    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    DEPLOY_FAILED = "deploy_failed"
    RUNNING = "running"
    EXECUTED = "executed"
    EXECUTION_FAILED = "execution_failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    UNREACHABLE = "unreachable"


#: phases after which nothing more happens on the node, and how a person reads them
FINAL_PHASES = {Phase.EXECUTED: "done", Phase.EXECUTION_FAILED: "failed", Phase.DEPLOY_FAILED: "failed",
                Phase.UNREACHABLE: "unreachable", Phase.CANCELLED: "cancelled", Phase.TIMED_OUT: "timed out"}
#: phases a node cannot leave for a new step's phase (a failure stays visible)
FAILED_PHASES = (Phase.UNREACHABLE, Phase.DEPLOY_FAILED, Phase.EXECUTION_FAILED)


class NodeStatus(Word):
    """A node's outcome once a run is read back (``NodeResult.status``), from the worst to the best."""

    UNREACHABLE = "unreachable"
    DEPLOY_FAILED = "deploy_failed"
    EXECUTION_FAILED = "execution_failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    FAILED = "failed"
    NOT_RUN = "not_run"
    OK = "ok"

