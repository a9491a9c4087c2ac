"""netunicorn's own objects, accepted wherever ours are (``pip install 'unicorn-ansible[netunicorn]'``).

Everything here is a no-op when netunicorn-base is not installed. When it is:

- netunicorn's Task and TaskDispatcher count as ours (virtual subclasses), so they go into
  our pipelines and graphs as they are;
- netunicorn's ExecutionGraph, Pipeline and CyclePipeline become our ExecutionGraph with the
  same networkx graph (:func:`as_flow`), and netunicorn's Experiment becomes ours
  (:func:`as_experiment`);
- our pools hand out nodes that are netunicorn Nodes too (see ``model/nodes.py``);
- netunicorn's code travels to hosts by value (:func:`register_netunicorn_by_value`), as netunicorn
  ships its library, and what netunicorn's own executor environment would give that code
  (requests, pydantic, networkx) is installed by the deployment (:func:`runtime_requirements`).
"""

from __future__ import annotations

import dis
import functools
import importlib
import importlib.util
import io
import sys
import types
from collections.abc import Iterator
from typing import Any

import cloudpickle

# What netunicorn's executor environment always has (netunicorn-base's and netunicorn-executor's
# dependencies) beyond the standard library, cloudpickle and returns (our bundle carries those):
# import name -> pip requirement.
NETUNICORN_RUNTIME = {"requests": "requests", "pydantic": "pydantic>=2", "networkx": "networkx"}

#: set by the command line when the experiment file does not use netunicorn (see ui/main.py)
_skipped = False


class NetunicornNeeded(BaseException):
    """An experiment loaded while netunicorn was skipped imported it after all (a module of its
    own did): the command starts again with netunicorn (ui/main.py). A BaseException: no
    error handler on the way turns it into an error message."""


def skip_in_this_process() -> None:
    """This process does without netunicorn-base even if it is installed: our nodes are our own
    (not netunicorn Nodes), netunicorn's classes are not adopted, and ``netunicorn.base`` (with
    pydantic: 23 MB of RSS and a few tenths of a second) is never imported. Called before the model loads."""
    global _skipped
    _skipped = True
    installed.cache_clear()


def check_not_needed() -> None:
    """After an experiment loaded: raise NetunicornNeeded if netunicorn was skipped but imported."""
    if _skipped and any(name == "netunicorn" or name.startswith("netunicorn.") for name in sys.modules):
        raise NetunicornNeeded()


@functools.cache
def installed() -> bool:
    """True when netunicorn-base can be imported here (and this process does not skip it)."""
    if _skipped:
        return False
    try:
        return importlib.util.find_spec("netunicorn.base") is not None
    except (ImportError, ValueError):
        return False


def _base() -> types.ModuleType | None:
    return importlib.import_module("netunicorn.base") if installed() else None


def register_netunicorn_by_value() -> None:
    """Make netunicorn-base's and netunicorn-library's code travel by value in every cloudpickle,
    as netunicorn itself ships netunicorn-library: hosts need not install netunicorn. The one
    place this is decided; idempotent, and never undone (netunicorn never undoes its own)."""
    for module in _shipped_packages():
        cloudpickle.register_pickle_by_value(module)


@functools.cache
def _shipped_packages() -> tuple[types.ModuleType, ...]:
    if not installed():
        return ()
    names = [name for name in ("netunicorn.base", "netunicorn.library") if importlib.util.find_spec(name)]
    return tuple(importlib.import_module(name) for name in names)


def adopt_netunicorn_classes() -> None:
    """Make netunicorn's Task/TaskDispatcher virtual subclasses of ours and netunicorn's node pool
    base count our pools; called once when unicorn_ansible is imported with netunicorn installed."""
    base = _base()
    if base is None:
        return
    from ..model import nodes, task

    task.Task.register(base.Task)
    task.TaskDispatcher.register(base.TaskDispatcher)
    from netunicorn.base.nodes import Nodes as NetunicornNodes

    NetunicornNodes.register(nodes.CountableNodePool)
    NetunicornNodes.register(nodes.UncountableNodePool)


# -- flows ------------------------------------------------------------------------------
def is_netunicorn_flow(obj: Any) -> bool:
    base = _base()
    return base is not None and isinstance(obj, base.ExecutionGraph)


def is_netunicorn_docker(environment: Any) -> bool:
    base = _base()
    return base is not None and isinstance(environment, base.DockerImage)


def as_environment(environment: Any) -> Any:
    """Our environment definition for one of netunicorn's: ShellExecution with the same commands
    and environment variables; a DockerImage with netunicorn's runtime context (ports mapping,
    environment variables, network, additional arguments), run by the host's podman or Docker
    (node/container.py). netunicorn's default DockerImage() (no image named, which its Pipeline
    sets) gets ``shell_fallback``: where the host cannot run it in a container, it runs as
    ShellExecution with a notice (the user did not ask for a container)."""
    from ..model.environment import DockerImage, EnvironmentDefinition, RuntimeContext, ShellExecution

    if isinstance(environment, EnvironmentDefinition) or environment is None:
        return environment
    context = getattr(environment, "runtime_context", None)
    variables = {str(k): str(v) for k, v in (getattr(context, "environment_variables", {}) or {}).items()}
    commands = list(getattr(environment, "commands", []))
    if is_netunicorn_docker(environment):
        runtime = RuntimeContext(ports_mapping=dict(getattr(context, "ports_mapping", {}) or {}),
                                 environment_variables=variables, network=getattr(context, "network", None),
                                 additional_arguments=list(getattr(context, "additional_arguments", []) or []))
        return DockerImage(commands=commands, image=environment.image or None, runtime_context=runtime,
                           shell_fallback=not environment.image)
    return ShellExecution(commands=commands, runtime_context=RuntimeContext(environment_variables=variables))


def as_flow(obj: Any) -> Any:
    """Our ExecutionGraph for netunicorn's ExecutionGraph, Pipeline or CyclePipeline (the same
    networkx graph, name, early stopping and environment); anything else is returned as it is."""
    if not is_netunicorn_flow(obj):
        return obj
    from ..model.graph import ExecutionGraph

    graph = ExecutionGraph(obj.early_stopping, obj.report_results, as_environment(obj.environment_definition),
                           obj.name)
    graph.graph = obj.graph.copy()
    graph.override_graph_validation = obj.override_graph_validation
    return graph


# -- nodes and experiments --------------------------------------------------------------
def as_node(node: Any) -> Any:
    """Our Node for a netunicorn Node built by hand (``Node(name="dummy", properties={})``)."""
    from ..model.nodes import Architecture, Node

    if isinstance(node, Node) or not installed():
        return node
    from netunicorn.base.nodes import Node as NetunicornNode

    if not isinstance(node, NetunicornNode):
        return node
    ours = Node(node.name, dict(node.properties), Architecture(node.architecture.value))
    ours.additional_properties = dict(node.additional_properties)
    return ours


def is_netunicorn_experiment(obj: Any) -> bool:
    base = _base()
    return base is not None and isinstance(obj, base.Experiment)


def as_experiment(obj: Any) -> Any:
    """Our Experiment for a netunicorn Experiment: each of its deployments' (already dispatched)
    graphs on the same node; anything else is returned as it is."""
    if not is_netunicorn_experiment(obj):
        return obj
    from ..model.experiment import Experiment

    experiment = Experiment(deployment_context=obj.deployment_context)
    for deployment in obj.deployment_map:
        # made in this process by netunicorn; its environment is the pipeline's own, without the
        # tasks' requirements, which our Deployment collects again
        graph = cloudpickle.loads(deployment.execution_graph)
        experiment.append(deployment.node, graph)
    return experiment


# -- what netunicorn code needs on a host -----------------------------------------------
class _ReferenceRecorder(cloudpickle.Pickler):
    """A cloudpickle Pickler that notes the top-level modules of what it pickles by reference
    and of the imports inside the code it pickles by value."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
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


def runtime_requirements(obj: Any) -> list[str]:
    """Deployment commands that make sure the host can import what netunicorn's executor
    environment would have given ``obj``'s netunicorn code (requests, pydantic, networkx); each
    installs the module with pip if it is missing and fails with a message naming it otherwise."""
    if not installed():
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


__all__ = [
    "NETUNICORN_RUNTIME",
    "adopt_netunicorn_classes",
    "as_environment",
    "as_experiment",
    "as_flow",
    "as_node",
    "installed",
    "is_netunicorn_docker",
    "register_netunicorn_by_value",
    "runtime_requirements",
]
