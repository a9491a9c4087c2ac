"""unicorn-ansible: netunicorn's experiment model, executed by Ansible on the hosts of your inventory.

Everything public is importable from here::

    from unicorn_ansible import Task, TaskDispatcher, Pipeline, Experiment, Node, Success, Failure
"""

from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from ._client import Client, DeploymentExecutionResult, ExperimentExecutionInformation, ExperimentStatus
from ._engine import run
from ._environment import DockerImage, EnvironmentDefinition, RuntimeContext, ShellExecution
from ._experiment import Deployment, Experiment
from ._nodes import Architecture, CountableNodePool, Node, Nodes
from ._flags import (
    AtomicDecrementFlagTask,
    AtomicIncrementFlagTask,
    FlagError,
    FlagValues,
    GetFlagTask,
    SetFlagTask,
    WaitForExactFlagResultTask,
    decrement_flag,
    get_flag,
    increment_flag,
    set_flag,
    wait_for_flag,
)
from ._graph import CyclePipeline, ExecutionGraph
from ._pipeline import Pipeline
from ._results import NodeResult, RunResults
from ._task import Task, TaskDispatcher
from .errors import (
    ExperimentError,
    GraphError,
    InventoryError,
    RunError,
    TestbedError,
    UnicornError,
    UntrustedDataError,
)

from ._version import __version__  # noqa: E402

__all__ = [
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
    "run",
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
    "RuntimeContext",
    "ShellExecution",
    "Success",
    "Task",
    "TaskDispatcher",
    "TestbedError",
    "UnicornError",
    "UntrustedDataError",
    "is_successful",
]
