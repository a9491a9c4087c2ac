"""The public names of unicorn_ansible, imported together the first time one is asked for
(``unicorn_ansible/__init__.py``): the command line starts without them."""


from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from ._version import __version__
from .compat.remote_client import RemoteClient
from .engine.lifecycle import run
from .engine.local import LocalExecutor, get_local_executor
from .errors import (
    ExperimentError,
    GraphError,
    InventoryError,
    RemoteClientException,
    RunError,
    TestbedError,
    UnicornError,
    UntrustedDataError,
    UsageError,
)
from .model.environment import DockerImage, EnvironmentDefinition, RuntimeContext, ShellExecution
from .model.experiment import Deployment, Experiment
from .model.flags import (
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
from .model.graph import ExecutionGraph
from .model.nodes import Architecture, CountableNodePool, Node, Nodes, UncountableNodePool
from .model.pipeline import CyclePipeline, Pipeline
from .model.task import Task, TaskDispatcher, add_artifact
from .results.artifacts import Artifact
from .results.load import NodeResult, RunResults, load_results
from .results.measurements import measurements, measurements_frame
from .results.refused import Refused
from .ui.client import Client, DeploymentExecutionResult, ExperimentExecutionInformation, ExperimentStatus

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
