"""A run's settings, computed once: the options a user gives (CompileOptions), each node's time
limit and poll time, and the Ansible settings of the generated ansible.cfg and environment.

The generated plays receive the computed values (``unicorn_time_limits``, ``unicorn_polls``,
``unicorn_bundle_name``); the role only looks them up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..connections import Setting
from ..errors import ExperimentError
from ..model.experiment import Deployment
from ..node.protocol import DEFAULT_LOG_CAP
from ..results.artifacts import DEFAULT_ARTIFACT_CAP

DEFAULT_POLL_SECONDS = 20
DEFAULT_RUN_TIMEOUT_SECONDS = 86400
FORKS_CAP = 50


@dataclass
class CompileOptions:
    """Settings of a run that are not part of the experiment."""

    forks: int | None = None
    poll_seconds: int = DEFAULT_POLL_SECONDS
    run_timeout_seconds: int = DEFAULT_RUN_TIMEOUT_SECONDS
    task_timeout: float | None = None
    requirement_timeout: float | None = None
    log_cap: int = DEFAULT_LOG_CAP
    #: bytes of artifacts brought home per run, over every node (see results/artifacts.py)
    artifact_cap: int = DEFAULT_ARTIFACT_CAP
    redeploy: bool = False
    strategy: str | None = None


@dataclass(frozen=True)
class NodeLimits:
    """How long one node's pipeline may run, and how the execution play waits for it."""

    #: seconds the pipeline may run: Deployment.keep_alive_timeout_minutes, else the run's limit
    #: (the executor enforces it itself, controller or not)
    time_limit: float
    #: the same limit in whole seconds (at least 1), for the play's wait
    play_limit: int
    #: seconds one wait call on the host blocks (at least 1, at most the limit)
    poll: int


def node_limits(deployment: Deployment, options: CompileOptions) -> NodeLimits:
    minutes = deployment.keep_alive_timeout_minutes
    time_limit = float(minutes) * 60 if minutes else float(options.run_timeout_seconds)
    play_limit = max(1, math.ceil(time_limit))
    return NodeLimits(time_limit, play_limit, max(1, min(int(options.poll_seconds), play_limit)))


def forks(host_count: int, options: CompileOptions) -> int:
    return options.forks or max(1, min(host_count, FORKS_CAP))


def ansible_settings(host_count: int, options: CompileOptions, project: Path,
                     connection_settings: Sequence[Setting] = ()) -> list[Setting]:
    """Our Ansible settings as (section, key, environment variable, value): one source for
    the generated ansible.cfg and for the environment ansible-runner gets.

    ``connection_settings``: what the connections of the run's hosts need (connections/: the ssh
    arguments with the run's flag tunnel, for one). The run's SSH control folder is no setting:
    each step creates and checks it, then names it to its play (engine/ssh_masters.py); a play
    run by hand uses Ansible's own (``~/.ansible/cp``)."""
    settings = [
        ("defaults", "forks", "ANSIBLE_FORKS", str(forks(host_count, options))),
        ("defaults", "callback_plugins", "ANSIBLE_CALLBACK_PLUGINS", str(project / "callback_plugins")),
        ("defaults", "callbacks_enabled", "ANSIBLE_CALLBACKS_ENABLED", "unicorn_collector"),
        ("defaults", "roles_path", "ANSIBLE_ROLES_PATH", str(project / "roles")),
        ("defaults", "interpreter_python", "ANSIBLE_PYTHON_INTERPRETER", "auto_silent"),
        ("defaults", "retry_files_enabled", "ANSIBLE_RETRY_FILES_ENABLED", "False"),
        ("defaults", "gathering", "ANSIBLE_GATHERING", "explicit"),
        ("ssh_connection", "pipelining", "ANSIBLE_PIPELINING", "True"),
        *connection_settings,
    ]
    if options.strategy:
        settings.append(("defaults", "strategy", "ANSIBLE_STRATEGY", options.strategy))
        if options.strategy.startswith("mitogen"):
            settings.append(("defaults", "strategy_plugins", "ANSIBLE_STRATEGY_PLUGINS", _mitogen_strategies()))
    return settings


def start_strategy(options: CompileOptions) -> str:
    """The strategy of site.yml's play that deploys and starts the nodes: the user's, else linear,
    so every node is deployed before any starts and all start together, as netunicorn's
    prepare-then-start does (experiments time servers and clients with sleeps). A host that does
    not answer delays the others' start by its connect timeout only (each run has SSH masters of
    its own, so no stale master adds to it); the user's strategy is kept (``free`` starts each node
    as soon as its own deployment is done)."""
    return options.strategy or "linear"


def start_round(options: CompileOptions, host_count: int, most_pipelines: int) -> bool:
    """Whether site.yml starts the pipelines in a round of their own before waiting for them.

    Not with ``free``: each deployment's call starts its pipeline. Not when every host runs one
    pipeline and the play works on every host at once (forks >= hosts): the execution play's
    first long poll starts each pipeline, every host's together, after every node deployed (the
    deployment play is done on all hosts before the next play begins). Otherwise a host's poll
    would hold its worker while other hosts, or its own other pipelines, wait to be started."""
    if start_strategy(options) in ("free", "mitogen_free"):
        return False
    return most_pipelines > 1 or forks(host_count, options) < host_count


def _mitogen_strategies() -> str:
    """Where Mitogen's strategy plugins are (pip install mitogen)."""
    try:
        import ansible_mitogen
    except ImportError as exc:
        raise ExperimentError(
            "--strategy mitogen_* needs Mitogen in unicorn-ansible's environment: pip install mitogen"
        ) from exc
    return str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")
