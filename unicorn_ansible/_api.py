"""The public names of unicorn_ansible, imported together the first time one is asked for
(``unicorn_ansible/__init__.py``): the command line starts without them.

Their one list is the package's ``__all__`` in ``__init__.py``, which must know them without
importing this module. Each import here re-exports (``X as X``: type checkers, strict ones
too, see the names through ``__init__.py``), and tests/unit/test_public_api.py checks that
this module exports exactly that list.
"""


from returns.pipeline import is_successful as is_successful
from returns.result import Failure as Failure
from returns.result import Result as Result
from returns.result import Success as Success

from ._version import __version__ as __version__
from .campaign.start import sweep as sweep
from .campaign.table import Campaign as Campaign
from .campaign.table import load_campaign as load_campaign
from .compat.remote_client import RemoteClient as RemoteClient
from .engine.lifecycle import run as run
from .engine.local import Executor as Executor
from .engine.local import ExecutorState as ExecutorState
from .engine.local import LocalExecutor as LocalExecutor
from .engine.local import get_local_executor as get_local_executor
from .errors import ExperimentError as ExperimentError
from .errors import GraphError as GraphError
from .errors import InventoryError as InventoryError
from .errors import RemoteClientException as RemoteClientException
from .errors import RunError as RunError
from .errors import TestbedError as TestbedError
from .errors import UnicornError as UnicornError
from .errors import UntrustedDataError as UntrustedDataError
from .errors import UsageError as UsageError
from .model.environment import DockerImage as DockerImage
from .model.environment import EnvironmentDefinition as EnvironmentDefinition
from .model.environment import RuntimeContext as RuntimeContext
from .model.environment import ShellExecution as ShellExecution
from .model.experiment import Deployment as Deployment
from .model.experiment import Experiment as Experiment
from .model.flags import AtomicDecrementFlagTask as AtomicDecrementFlagTask
from .model.flags import AtomicIncrementFlagTask as AtomicIncrementFlagTask
from .model.flags import FlagError as FlagError
from .model.flags import FlagValues as FlagValues
from .model.flags import GetFlagTask as GetFlagTask
from .model.flags import SetFlagTask as SetFlagTask
from .model.flags import WaitForExactFlagResultTask as WaitForExactFlagResultTask
from .model.flags import decrement_flag as decrement_flag
from .model.flags import get_flag as get_flag
from .model.flags import increment_flag as increment_flag
from .model.flags import set_flag as set_flag
from .model.flags import wait_for_flag as wait_for_flag
from .model.graph import ExecutionGraph as ExecutionGraph
from .model.nodes import Architecture as Architecture
from .model.nodes import CountableNodePool as CountableNodePool
from .model.nodes import Node as Node
from .model.nodes import Nodes as Nodes
from .model.nodes import UncountableNodePool as UncountableNodePool
from .model.pipeline import CyclePipeline as CyclePipeline
from .model.pipeline import Pipeline as Pipeline
from .model.task import Task as Task
from .model.task import TaskDispatcher as TaskDispatcher
from .model.task import add_artifact as add_artifact
from .results.artifacts import Artifact as Artifact
from .results.load import NodeResult as NodeResult
from .results.load import RunResults as RunResults
from .results.load import load_results as load_results
from .results.measurements import measurements as measurements
from .results.measurements import measurements_frame as measurements_frame
from .results.refused import Refused as Refused
from .ui.client import Client as Client
from .ui.client import DeploymentExecutionResult as DeploymentExecutionResult
from .ui.client import ExperimentExecutionInformation as ExperimentExecutionInformation
from .ui.client import ExperimentStatus as ExperimentStatus
