"""Environment definitions: how a node's environment is prepared before its pipeline runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class RuntimeContext:
    """What the executor sets up around every task: environment variables, for now."""

    environment_variables: Dict[str, str] = field(default_factory=dict)


@dataclass
class EnvironmentDefinition:
    """Commands that prepare the environment, and the runtime context of the executor."""

    commands: List[str] = field(default_factory=list)
    runtime_context: RuntimeContext = field(default_factory=RuntimeContext)


@dataclass
class ShellExecution(EnvironmentDefinition):
    """The node's environment is prepared by running the commands with the OS shell.

    This engine runs them inside a Python virtual environment of the node's own,
    which is active for the requirements and the executor alike.
    """


@dataclass
class DockerImage(EnvironmentDefinition):
    """A Docker image as the environment (netunicorn's default).

    This engine does not run Docker images; ``Experiment.append`` refuses them.
    """

    image: Optional[str] = None
