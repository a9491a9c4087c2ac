"""Environment definitions: how a node's environment is prepared before its pipeline runs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RuntimeContext:
    """What surrounds the pipeline, in netunicorn's fields.

    - ``ports_mapping``: ``{container port: host port}`` (netunicorn's Docker connector's
      direction), published by a DockerImage's container
    - ``environment_variables``: set for the requirements and every task
    - ``network``: a DockerImage container's network (default: the host's network, or the
      engine's default network when ports are mapped)
    - ``additional_arguments``: more arguments for the engine's ``run`` (a list)

    Only environment variables apply to ShellExecution.
    """

    ports_mapping: dict[int, int] = field(default_factory=dict)
    environment_variables: dict[str, str] = field(default_factory=dict)
    network: str | None = None
    additional_arguments: list[str] = field(default_factory=list)


@dataclass
class EnvironmentDefinition:
    """Commands that prepare the environment, and the runtime context of the executor."""

    commands: list[str] = field(default_factory=list)
    runtime_context: RuntimeContext = field(default_factory=RuntimeContext)


@dataclass
class ShellExecution(EnvironmentDefinition):
    """The node's environment is prepared by running the commands with the OS shell.

    This engine runs them inside a Python virtual environment of the node's own,
    which is active for the requirements and the executor alike.
    """


@dataclass
class DockerImage(EnvironmentDefinition):
    """A container image as the environment (netunicorn's default), run by the host's podman or Docker.

    - ``image``: the user's image (pulled when the host lacks it); None: an image built on the
      host from the pipeline's requirements, one step each, as netunicorn builds it
    - ``base_image``: the base of that built image (default: the inventory's
      ``unicorn_container_base_image``, else ``python:<X.Y>-slim`` for the controller's Python)

    - ``shell_fallback``: netunicorn's default ``DockerImage()`` (the user did not ask for a
      container): where the host can have no image, it runs as ShellExecution with a notice if
      it has no requirements of its own or the host's ``unicorn_container_fallback`` is ``shell``;
      else that node fails, naming both fixes

    The image needs a ``python3`` of the controller's version: the executor runs inside.
    """

    image: str | None = None
    base_image: str | None = None
    shell_fallback: bool = False
