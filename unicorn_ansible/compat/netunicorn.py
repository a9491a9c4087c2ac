"""netunicorn's own objects among ours (``pip install 'unicorn-ansible[netunicorn]'``), at the boundary.

The model never imports netunicorn nor this module: this module registers its adapter with the
model when it loads (model/foreign.py; loading the package's public names loads it), and it
imports netunicorn only once one of netunicorn's objects is seen, told by the object's type (a
class from the ``netunicorn`` package in its MRO) or by what this process has loaded already;
nothing imports netunicorn to ask whether it is installed. A run that never meets netunicorn
never loads it (netunicorn.base, with pydantic: a few tenths of a second and 23 MB).

Coming in, converted where they enter (``Experiment.append``/``map``, prepare, compile, run, the client):

- netunicorn's ExecutionGraph, Pipeline and CyclePipeline become our ExecutionGraph with the same
  networkx graph (:func:`as_flow`), its environment definitions ours (:func:`as_environment`), a
  netunicorn Node ours (:func:`as_node`) and a netunicorn Experiment ours (:func:`as_experiment`);
- its Tasks and TaskDispatchers need nothing: they are shaped like ours (model/task.py).

Going out, to netunicorn's code:

- the pools the client and the command line hand out hold netunicorn Nodes (:func:`for_netunicorn`,
  compat/netunicorn_nodes.py: ours, and netunicorn's too), as netunicorn's ``Experiment.map`` checks;
- any node of ours lists netunicorn's environment classes among its ``available_environments``
  once netunicorn is loaded (its ``Deployment`` checks them), and our ``Architecture`` equals
  netunicorn's member of the same name (its library's dispatchers compare).

Travelling: netunicorn's code travels to hosts by value, as netunicorn ships its library, and
what netunicorn's executor environment would give that code (requests, pydantic, networkx) is
installed by the deployment (:func:`runtime_requirements`).
"""

from __future__ import annotations

import dis
import importlib
import importlib.util
import io
import sys
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar, overload

import cloudpickle

from ..errors import ExperimentError
from ..model import foreign
from ..model.environment import DockerImage, EnvironmentDefinition, RuntimeContext, ShellExecution
from ..model.experiment import Deployment, Experiment
from ..model.graph import ExecutionGraph
from ..model.nodes import CountableNodePool, Node, UncountableNodePool

if TYPE_CHECKING:  # pragma: no cover
    from netunicorn.base.deployment import Deployment as NetunicornDeployment

# What netunicorn's executor environment always has (netunicorn-base's and netunicorn-executor's
# dependencies) beyond the standard library, cloudpickle and returns (our bundle carries those):
# import name -> pip requirement.
NETUNICORN_RUNTIME = {"requests": "requests", "pydantic": "pydantic>=2", "networkx": "networkx"}
#: netunicorn's packages whose code travels to hosts by value
_SHIPPED_PACKAGES = ("netunicorn.base", "netunicorn.library")

PoolT = TypeVar("PoolT", CountableNodePool, UncountableNodePool)


def is_netunicorns(obj: object) -> bool:
    """Whether ``obj`` is one of netunicorn's objects (or of a class derived from one of its)."""
    return any(cls.__module__ == "netunicorn" or cls.__module__.startswith("netunicorn.")
               for cls in type(obj).__mro__)


def loaded() -> bool:
    """Whether this process uses netunicorn (something imported netunicorn.base)."""
    return "netunicorn.base" in sys.modules


def installed() -> bool:
    """Whether netunicorn-base can be imported here (found without importing it)."""
    try:
        return importlib.util.find_spec("netunicorn.base") is not None
    except (ImportError, ValueError):
        return False


def register_netunicorn_by_value() -> list[types.ModuleType]:
    """Make the netunicorn packages this process loaded travel by value in every cloudpickle, as
    netunicorn itself ships netunicorn-library: hosts need not install netunicorn. Idempotent, and
    never undone (netunicorn never undoes its own); returns those packages."""
    modules = [sys.modules[name] for name in _SHIPPED_PACKAGES if name in sys.modules]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    return modules


# -- coming in ---------------------------------------------------------------------------
def as_environment(environment: object) -> object:
    """Our environment definition for one of netunicorn's: a DockerImage with netunicorn's runtime
    context (ports mapping, environment variables, network, additional arguments), run by the
    host's podman or Docker (node/container.py); any other ShellExecution with the same commands
    and runtime context (of which the compiler refuses what only a container can have).
    netunicorn's default DockerImage() (no image named, which its Pipeline sets) gets
    ``shell_fallback``: where the host can have no image, it may run as ShellExecution with a
    notice (compiler/compile.py's container_spec says when: the user did not ask for a
    container). Anything else is returned as it is."""
    if not is_netunicorns(environment):
        return environment
    from netunicorn.base import environment_definitions as theirs

    if not isinstance(environment, theirs.EnvironmentDefinition):
        return environment
    context = environment.runtime_context
    variables = {str(k): str(v) for k, v in context.environment_variables.items()}
    commands = list(environment.commands)
    # every field, for either kind: what a ShellExecution cannot use is refused when compiled, not dropped
    runtime = RuntimeContext(ports_mapping=dict(context.ports_mapping), environment_variables=variables,
                             network=context.network, additional_arguments=list(context.additional_arguments))
    if isinstance(environment, theirs.DockerImage):
        return DockerImage(commands=commands, image=environment.image or None, runtime_context=runtime,
                           shell_fallback=not environment.image)
    return ShellExecution(commands=commands, runtime_context=runtime)


def as_flow(obj: object) -> object:
    """Our ExecutionGraph for netunicorn's ExecutionGraph, Pipeline or CyclePipeline (the same
    networkx graph, name, early stopping and environment); anything else is returned as it is."""
    if not is_netunicorns(obj):
        return obj
    from netunicorn.base.execution_graph import ExecutionGraph as Theirs

    if not isinstance(obj, Theirs):
        return obj
    environment = as_environment(obj.environment_definition)
    graph = ExecutionGraph(obj.early_stopping, obj.report_results,
                           environment if isinstance(environment, EnvironmentDefinition) else None, obj.name)
    graph.graph = obj.graph.copy()
    graph.override_graph_validation = obj.override_graph_validation
    return graph


def as_node(node: object) -> object:
    """Our Node for a netunicorn Node (one built by hand, ``Node(name="dummy", properties={})``,
    or one of ours handed to netunicorn: a plain Node again); anything else as it is."""
    if not is_netunicorns(node):
        return node
    from .netunicorn_nodes import as_our_node

    return as_our_node(node)


@overload
def as_experiment(obj: Experiment) -> Experiment: ...
@overload
def as_experiment(obj: object) -> object: ...


def as_experiment(obj: object) -> object:
    """Our Experiment for a netunicorn Experiment: each of its deployments' (already dispatched)
    graphs on the same node, with what the user set on the deployment (its environment, time
    limit, cleanup: :func:`_carry_over`); anything else is returned as it is."""
    if not is_netunicorns(obj):
        return obj
    from netunicorn.base.experiment import Experiment as Theirs

    if not isinstance(obj, Theirs):
        return obj
    experiment = Experiment(deployment_context=obj.deployment_context)
    for deployment in obj.deployment_map:
        node = as_node(deployment.node)
        if not isinstance(node, Node):
            raise TypeError(f"netunicorn's Experiment has a deployment on {node!r}, which is not a Node")
        experiment.append(node, _graph_of(deployment), keep_alive_timeout_minutes=_time_limit(deployment, node))
        _carry_over(deployment, experiment.deployment_map[-1])
    return experiment


#: netunicorn's Deployment(keep_alive_timeout_minutes=...) default: every deployment has it
NETUNICORN_KEEP_ALIVE_MINUTES = 10


def _time_limit(deployment: NetunicornDeployment, node: Node) -> float | None:
    """A netunicorn deployment's ``keep_alive_timeout_minutes`` as our node's time limit: its
    default (10, which every deployment has: netunicorn's heartbeat timeout, which our polled
    executors never miss) leaves the run's limit; any other value is the time the user gave the
    node ("set timeout to whatever time your experiment needs", netunicorn's example)."""
    minutes = deployment.keep_alive_timeout_minutes
    if minutes == NETUNICORN_KEEP_ALIVE_MINUTES:
        return None
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise ExperimentError(f"node {node.name}: Deployment.keep_alive_timeout_minutes is {minutes!r}; "
                              "it must be a positive number of minutes")
    return float(minutes)


def _carry_over(theirs: NetunicornDeployment, ours: Deployment) -> None:
    """What a netunicorn user may set on a deployment after ``append``/``map``, onto ours: its
    environment definition (netunicorn's Deployment has its own copy, with the tasks'
    requirements: ``DockerImage(image=...)``, its runtime context's variables, ports, network,
    arguments) and ``cleanup``. Whatever cannot run here is refused when the run is compiled."""
    environment = as_environment(theirs.environment_definition)
    if not isinstance(environment, EnvironmentDefinition):
        raise ExperimentError(f"node {ours.node.name}: the deployment's environment_definition is a "
                              f"{type(environment).__name__}; use DockerImage or ShellExecution")
    environment.commands = [*environment.commands, *ours.host_requirements]
    ours.environment_definition = environment
    ours.cleanup = bool(theirs.cleanup)


def _graph_of(deployment: NetunicornDeployment) -> ExecutionGraph:
    """A netunicorn deployment's graph, as ours: made in this process by netunicorn; its environment
    is the pipeline's own, without the tasks' requirements, which our Deployment collects again."""
    graph = as_flow(cloudpickle.loads(deployment.execution_graph))
    assert isinstance(graph, ExecutionGraph)
    return graph


def entering(value: object) -> object:
    """Any of netunicorn's nodes, flows and environment definitions, as ours."""
    return as_environment(as_flow(as_node(value))) if is_netunicorns(value) else value


# -- going out -----------------------------------------------------------------------------
def for_netunicorn(pool: PoolT, load: bool = False) -> PoolT:
    """``pool`` as the nodes handed to netunicorn code: once this process uses netunicorn (or,
    with ``load``, whenever it is installed), a pool whose nodes are netunicorn Nodes too, which
    netunicorn's ``Experiment.map`` takes (compat/netunicorn_nodes.py); else ``pool`` itself."""
    if not (loaded() or (load and installed())):
        return pool
    from .netunicorn_nodes import netunicorn_pool

    adapted: PoolT = netunicorn_pool(pool)
    return adapted


def environments(node: Node) -> set[type]:
    """netunicorn's environment classes ``node`` runs, once netunicorn is loaded: both, or those
    its ``netunicorn-environments`` property names (netunicorn's rule)."""
    if not loaded():
        return set()
    from netunicorn.base.environment_definitions import DockerImage as TheirDocker
    from netunicorn.base.environment_definitions import ShellExecution as TheirShell

    kinds: set[type] = {TheirShell, TheirDocker}
    named = node.properties.get("netunicorn-environments")
    if isinstance(named, (list, tuple, set, frozenset)):
        kinds = {kind for kind in kinds if kind.__name__ in named}
    return kinds


# -- what netunicorn code needs on a host -----------------------------------------------
class _ReferenceRecorder(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle has no type hints
    """A cloudpickle Pickler that notes the top-level modules of what it pickles by reference
    and of the imports inside the code it pickles by value."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.modules: set[str] = set()

    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, types.ModuleType):
            self.modules.add(obj.__name__.split(".")[0])
        elif isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            self.modules.add(str(getattr(obj, "__module__", "") or "").split(".")[0])
        if isinstance(obj, types.CodeType):
            self.modules.update(_imported_modules(obj))
        return super().reducer_override(obj)


def _imported_modules(code: types.CodeType) -> Iterator[str]:
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME":
            yield str(instruction.argval).split(".")[0]
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _imported_modules(constant)


def runtime_requirements(obj: object) -> list[str]:
    """Deployment commands that make sure the host can import what netunicorn's executor
    environment would have given ``obj``'s netunicorn code (requests, pydantic, networkx); each
    installs the module with pip if it is missing and fails with a message naming it otherwise."""
    if not loaded():  # no netunicorn code can be in it
        return []
    register_netunicorn_by_value()
    recorder = _ReferenceRecorder(io.BytesIO())
    recorder.dump(obj)
    return [_ensure_command(name, NETUNICORN_RUNTIME[name]) for name in sorted(recorder.modules & set(NETUNICORN_RUNTIME))]


def _ensure_command(module: str, requirement: str) -> str:
    message = (f"netunicorn code in this pipeline imports {module} (netunicorn's executor always has it); "
               f"it is not importable on this host and 'pip install {requirement}' failed: install {module} "
               "into this host's Python (e.g. apt-get install python3-" + module + ") or give the host a package index")
    return (f"python3 -c 'import {module}' 2>/dev/null || python3 -m pip install -q '{requirement}' "
            f"|| {{ echo \"{message}\" >&2; exit 1; }}")


class NetunicornAdapter:
    """What the model asks of netunicorn (model/foreign.py's Adapter)."""

    def entering(self, value: object) -> object:
        return entering(value)

    def environments(self, node: Node) -> set[type]:
        return environments(node)

    def by_value(self) -> list[types.ModuleType]:
        return register_netunicorn_by_value()

    def host_requirements(self, pipeline: object) -> list[str]:
        return runtime_requirements(pipeline)


ADAPTER = NetunicornAdapter()
foreign.register(ADAPTER)

__all__ = [
    "ADAPTER",
    "NETUNICORN_RUNTIME",
    "NetunicornAdapter",
    "as_environment",
    "as_experiment",
    "as_flow",
    "as_node",
    "for_netunicorn",
    "installed",
    "is_netunicorns",
    "loaded",
    "register_netunicorn_by_value",
    "runtime_requirements",
]
