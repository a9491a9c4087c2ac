"""unicorn-ansible: netunicorn's experiment model, executed by Ansible on the hosts of your inventory.

Everything public is importable from here::

    from unicorn_ansible import Task, TaskDispatcher, Pipeline, Experiment, Node, Success, Failure

Importing the package is cheap: its public names load together the first time one is used
(``_api.py``), so the command line starts reading the inventory before the rest loads.
"""

# ruff: noqa: F405  (the public names come from _api.py, imported when first used)
from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from ._api import *  # noqa: F403

__all__ = [
    "__version__",
    "AtomicDecrementFlagTask",
    "AtomicIncrementFlagTask",
    "FlagError",
    "FlagValues",
    "GetFlagTask",
    "SetFlagTask",
    "WaitForExactFlagResultTask",
    "decrement_flag",
    "get_flag",
    "increment_flag",
    "set_flag",
    "wait_for_flag",
    "Architecture",
    "Client",
    "DeploymentExecutionResult",
    "ExperimentExecutionInformation",
    "ExperimentStatus",
    "NodeResult",
    "RunResults",
    "Artifact",
    "add_artifact",
    "measurements",
    "measurements_frame",
    "Refused",
    "load_results",
    "run",
    "Campaign",
    "load_campaign",
    "sweep",
    "CountableNodePool",
    "CyclePipeline",
    "Deployment",
    "DockerImage",
    "EnvironmentDefinition",
    "Experiment",
    "ExecutionGraph",
    "ExperimentError",
    "Failure",
    "GraphError",
    "InventoryError",
    "Node",
    "Nodes",
    "Pipeline",
    "Result",
    "RunError",
    "RemoteClient",
    "RemoteClientException",
    "Executor",
    "ExecutorState",
    "LocalExecutor",
    "get_local_executor",
    "RuntimeContext",
    "ShellExecution",
    "Success",
    "Task",
    "TaskDispatcher",
    "TestbedError",
    "UncountableNodePool",
    "UnicornError",
    "UntrustedDataError",
    "UsageError",
    "is_successful",
]


def __getattr__(name: str) -> object:
    if name in __all__:
        from . import _api

        globals().update((public, getattr(_api, public)) for public in __all__)
        return globals()[name]
    raise AttributeError(f"module 'unicorn_ansible' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
