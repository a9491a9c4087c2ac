"""Compile an Experiment into a self-contained run folder (ansible-runner's private data dir).

Compiling touches no host. The folder's layout is :mod:`unicorn_ansible.engine.rundir`'s;
what the compiler writes there:

    run.json, experiment.pkl, flags-endpoint.json, inventory-snapshot.json, env/envvars,
    inventory/hosts.yml      (the embedded default inventory only, with host_vars/ putting the local
                             machine's work folders in the home folder; user inventories are referenced)
    project/                 ansible.cfg, site.yml, deploy.yml, execute.yml, cancel.yml, roles/, callback_plugins/,
                             files/unicorn-node.pyz.head: the executor bundle every node shares,
                             files/nodes/<node>/: the rest of the node's bundle (unicorn-node.pyz.tail:
                             the node's files, the zip's directory; the deployment ships head + tail)
                             and readable copies of those files (pipeline.pkl, node.json, deploy.json)
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import secrets
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cloudpickle
import jinja2

from .._version import __version__
from ..compat.netunicorn import as_experiment
from ..connections import HostConnections
from ..engine.flag_server import FlagEndpoint, FlagReach, new_endpoint, task_settings, write_endpoint
from ..engine.rundir import RunDir, RunStatus, write_atomic, write_json
from ..errors import ExperimentError, InventoryError, UsageError
from ..home import home_dir
from ..inventory import Inventory, default_inventory_text
from ..model.environment import DockerImage, EnvironmentDefinition
from ..model.experiment import Deployment, Experiment
from ..node import digests
from ..node.protocol import FINAL_STATUSES
from ..node.shown import printable_line
from ..node.wire import (
    ArtifactDeclarations,
    ContainerSpec,
    DeclaredArtifact,
    DeploySpec,
    FlagSettings,
    ImportNeed,
    JSONObject,
    NodeSpec,
    RunOptions,
    RunRecord,
    WireError,
    check_folder_name,
)
from ..resources import callback_plugin, playbooks_dir, roles_dir
from .bundle import BUNDLE_HEAD_NAME, NODE_BUNDLE_NAME, NODE_TAIL_NAME, NodeBundles, build_bundle
from .flag_use import check_flags_reach
from .settings import CompileOptions, ansible_settings, node_limits, start_round, start_strategy

__all__ = ["CompileOptions", "check_run_name", "compile_experiment", "environment_key", "inventory_args"]

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PLAYBOOKS = ("site.yml", "deploy.yml", "execute.yml", "cancel.yml", "ansible.cfg")


def check_run_name(name: str) -> str:
    if not RUN_NAME.match(name or ""):
        raise UsageError(
            f"run name {name!r} is not allowed; use letters, digits, '.', '_' and '-' "
            "(up to 100 characters, starting with a letter or digit)"
        )
    return name


#: what an inventory host's name cannot hold: Ansible reads it in a host pattern (``--limit a,b``:
#: a comma separates, braces and whitespace break the pattern and the templates), a shell word
_HOST_NAME_BREAKS = frozenset(",{}")


def _check_host_name(host: str) -> None:
    """An InventoryError naming a host whose name cannot name a folder, or breaks Ansible's host
    patterns (a space, a comma, a newline, a brace, a control character): the run would end
    ``not_run`` with an empty error."""
    shown = printable_line(repr(host))
    try:
        check_folder_name(host)  # the rule every folder named by a node keeps (the run folder's and the hosts')
    except ValueError:
        raise InventoryError(f"inventory host name {shown} cannot name a folder; rename the host in the inventory") \
            from None
    bad = sorted({c for c in host if c in _HOST_NAME_BREAKS or c.isspace() or not c.isprintable()})
    if bad:
        listed = ", ".join(printable_line(repr(c)) for c in bad)
        raise InventoryError(f"inventory host name {shown} holds {listed}, which Ansible's host patterns cannot "
                             "carry; rename the host in the inventory (keep ansible_host for its address)")


def environment_key(commands: Sequence[str], variables: Mapping[str, str], python: str) -> str:
    """The name of a node's environment folder: runs with the same requirements share it."""
    return digests.environment_key(list(commands), variables, python)


@functools.cache
def _templates() -> jinja2.Environment:
    # Our own delimiters, so the Ansible expressions ({{ }}) in the templates pass through untouched.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(playbooks_dir())),
        variable_start_string="[[",
        variable_end_string="]]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def versions() -> dict[str, str]:
    import ansible
    import ansible_runner
    import cloudpickle
    import returns

    def version_of(module: object, dist: str) -> str:
        try:
            from importlib.metadata import version

            return version(dist)
        except Exception:
            return str(getattr(module, "__version__", "?"))

    return {
        "unicorn-ansible": __version__,
        "python": platform.python_version(),
        "ansible-core": version_of(ansible, "ansible-core"),
        "ansible-runner": version_of(ansible_runner, "ansible-runner"),
        "cloudpickle": version_of(cloudpickle, "cloudpickle"),
        "returns": version_of(returns, "returns"),
    }


def compile_experiment(
    experiment: Experiment,
    inventory: Inventory,
    run_dir: Path,
    name: str,
    options: CompileOptions | None = None,
) -> Path:
    """Write the run folder for ``experiment`` on ``inventory``; return its path."""
    options = options or CompileOptions()
    check_run_name(name)
    experiment = as_experiment(experiment)
    hosts = _checked_hosts(experiment, inventory)
    connections = HostConnections.of(inventory, hosts)
    check_flags_reach(experiment, connections)
    run = RunDir(Path(run_dir).resolve())
    _lay_out(run)
    flags = new_endpoint(run.path, local=connections.reach(FlagReach.SOCKET))
    write_endpoint(run.path, flags)
    run_id = _host_run_id(name)
    compiled = _Compilation(run, name, run_id, inventory, options, flags)
    environments = shared_environments(experiment)
    for deployment in experiment:
        compiled.write_node(deployment, environments.get(deployment.executor_id))
    settings = ansible_settings(len(hosts), options, run.project, connections.ansible_settings(flags))
    _write_playbooks(run, compiled.playbook_context(name, run_id, hosts, settings))
    _write_inventory(run, inventory, hosts)
    write_json(run.envvars_file, {e: v for _, _, e, v in settings})
    run.create_record(_run_record(name, run_id, hosts, {_executor(d): d.node.name for d in experiment}, inventory,
                                  options))
    # The experiment itself, for the client's get_experiment_status (a controller-side file).
    write_atomic(run.experiment_file, cloudpickle.dumps(experiment), 0o600)
    return run.path


def _checked_hosts(experiment: Experiment, inventory: Inventory) -> list[str]:
    """The experiment's node names (each once, however many pipelines it runs), each an inventory
    host that can name a folder."""
    if not isinstance(experiment, Experiment):
        raise ExperimentError(f"expected an Experiment, got {type(experiment).__name__}")
    if len(experiment) == 0:
        raise ExperimentError("the experiment has no deployments; add one with experiment.append(node, pipeline)")
    hosts = list(dict.fromkeys(deployment.node.name for deployment in experiment))
    missing = [host for host in hosts if host not in inventory]
    if missing:
        known = ", ".join(list(inventory.hostvars)[:10]) or "none"
        raise InventoryError(
            f"node(s) {', '.join(missing)} not in the inventory (its hosts: {known}); "
            "name nodes after inventory hosts, e.g. pick them from the node pool given to experiment(nodes)"
        )
    for host in hosts:
        _check_host_name(host)
    _check_executor_ids(experiment)
    return hosts


def _check_executor_ids(experiment: Experiment) -> None:
    """Each deployment's folders are named by its executor id: no two may share one (a host that
    an inventory other than INI names like a node's second pipeline, ``h1#2``)."""
    seen: set[str] = set()
    for deployment in experiment:
        executor = _executor(deployment)
        if executor in seen:
            raise ExperimentError(f"two deployments are named {executor}: the inventory has a host of that name and "
                                  f"it is also the executor id of another node's second or later pipeline; "
                                  "rename the host (no '#' in host names)")
        seen.add(executor)


def _lay_out(run: RunDir) -> None:
    """The run folder's folders, with fresh copies of the role and the callback plugin."""
    for folder in (run.inventory_dir, run.envvars_file.parent, run.nodes_dir, run.path / "artifacts"):
        folder.mkdir(parents=True, exist_ok=True)
    for name in ("roles", "callback_plugins", "files/nodes"):
        shutil.rmtree(run.project / name, ignore_errors=True)
        (run.project / name).mkdir(parents=True, exist_ok=True)
    shutil.copytree(roles_dir(), run.project / "roles", dirs_exist_ok=True, copy_function=shutil.copyfile)
    shutil.copyfile(callback_plugin(), run.project / "callback_plugins" / callback_plugin().name)
    _make_private(run.project)


def _make_private(tree: Path) -> None:
    """Folders 0700, files 0600 (copies of the package's files would keep its modes)."""
    for folder, _, files in os.walk(tree):
        os.chmod(folder, 0o700)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o600)


#: the inventory variable that lets netunicorn's default DockerImage() run its requirements on the
#: host where no image can be had, and its values
CONTAINER_FALLBACK = "unicorn_container_fallback"
FALLBACK_SHELL, FALLBACK_NONE = "shell", "none"


def container_fallback(host: str, variables: Mapping[str, object]) -> str:
    """The host's ``unicorn_container_fallback``: ``shell`` or ``none`` (its default)."""
    value = variables.get(CONTAINER_FALLBACK)
    if value in (None, "", FALLBACK_NONE):
        return FALLBACK_NONE
    if value != FALLBACK_SHELL:
        raise InventoryError(f"host {host}: {CONTAINER_FALLBACK} is {value!r}; set it to {FALLBACK_SHELL} (netunicorn's "
                             f"default DockerImage runs its requirements on the host where no image can be had) "
                             f"or {FALLBACK_NONE} (that node fails instead)")
    return FALLBACK_SHELL


def _check_shell_context(environment: EnvironmentDefinition, host: str) -> None:
    """A ShellExecution runs on the host itself: a runtime context for containers is refused, not dropped."""
    context = environment.runtime_context
    for field_name, value in (("ports_mapping", context.ports_mapping), ("network", context.network),
                              ("additional_arguments", context.additional_arguments)):
        if value:
            raise ExperimentError(f"node {host}: RuntimeContext.{field_name} is {value!r}, but its environment is "
                                  f"{type(environment).__name__}, which runs on the host itself; use DockerImage for "
                                  f"a container with {field_name}, or leave it empty")


def container_spec(environment: EnvironmentDefinition, host: str, fallback: str = FALLBACK_NONE,
                   own_requirements: bool = True, cleanup: bool = True) -> ContainerSpec | None:
    """What the node's deployment needs to run a DockerImage environment (node/container.py); None otherwise.

    netunicorn's default ``DockerImage()`` (``shell_fallback``, no image named) may run as
    ShellExecution where the host can have no image only if that installs nothing on the host (no
    requirements of its own) or the host's ``fallback`` is ``shell``; else that node fails, and its
    error names both fixes. ``cleanup``: the Deployment's (False: the container is kept, stopped)."""
    if not isinstance(environment, DockerImage):
        _check_shell_context(environment, host)
        return None
    context = environment.runtime_context
    arguments = context.additional_arguments
    if isinstance(arguments, str) or not all(isinstance(a, str) for a in arguments):
        raise ExperimentError(f"node {host}: RuntimeContext.additional_arguments must be a list of strings, "
                              f"got {arguments!r}")
    try:
        ports = {str(int(inside)): int(outside) for inside, outside in context.ports_mapping.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ExperimentError(f"node {host}: RuntimeContext.ports_mapping must map container ports to host ports "
                              f"(numbers), got {context.ports_mapping!r}") from exc
    default = bool(environment.shell_fallback) and not environment.image
    return ContainerSpec(image=environment.image, base_image=environment.base_image, ports=ports,
                         network=context.network, arguments=tuple(arguments), cleanup=bool(cleanup),
                         default_image=default,
                         shell_fallback=default and (fallback == FALLBACK_SHELL or not own_requirements))


def _executor(deployment: Deployment) -> str:
    """The deployment's executor id (Deployments made outside an Experiment have none yet)."""
    return getattr(deployment, "executor_id", "") or deployment.node.name


@dataclass(frozen=True)
class SharedEnvironment:
    """The one environment of a node's ShellExecution pipelines: their requirements in order, each
    once, and their environment variables (a later pipeline's value wins); ``first`` deploys it."""

    first: str
    commands: list[str]
    variables: dict[str, str]


def shared_environments(experiment: Experiment) -> dict[str, SharedEnvironment]:
    """executor id -> the environment it shares with the other ShellExecution pipelines of its node,
    for nodes that run several (a DockerImage pipeline keeps its own image)."""
    by_host: dict[str, list[Deployment]] = {}
    for deployment in experiment:
        if not isinstance(deployment.environment_definition, DockerImage):
            by_host.setdefault(deployment.node.name, []).append(deployment)
    shared: dict[str, SharedEnvironment] = {}
    for deployments in by_host.values():
        if len(deployments) < 2:
            continue
        commands = list(dict.fromkeys(c for d in deployments for c in d.environment_definition.commands))
        variables = {str(k): str(v) for d in deployments
                     for k, v in d.environment_definition.runtime_context.environment_variables.items()}
        environment = SharedEnvironment(_executor(deployments[0]), commands, variables)
        shared.update((_executor(d), environment) for d in deployments)
    return shared


def _host_run_id(name: str) -> str:
    """The host-side folder of this run: its name plus a random part, so a replaced
    or recompiled run never finds an older run's files on a host."""
    return f"{name}-{secrets.token_hex(4)}"


class _Compilation:
    """What the nodes' files of one compilation share, and what they tell the playbooks."""

    def __init__(self, run: RunDir, name: str, run_id: str, inventory: Inventory, options: CompileOptions,
                 flags: FlagEndpoint) -> None:
        self.run, self.name, self.run_id, self.inventory = run, name, run_id, inventory
        self.options, self.flags = options, flags
        self.bundles = NodeBundles(build_bundle())
        write_atomic(run.project / "files" / BUNDLE_HEAD_NAME, self.bundles.head, 0o600)
        self.python = "%d.%d" % sys.version_info[:2]
        self.requirement_counts: dict[str, int] = {}
        self.time_limits: dict[str, int] = {}
        self.polls: dict[str, int] = {}
        self.executors: dict[str, list[str]] = {}  # host -> its deployments' executor ids, in order

    def write_node(self, deployment: Deployment, shared: SharedEnvironment | None = None) -> None:
        """The deployment's bundle, and readable copies of the files it carries (in its executor's
        folder: the node's name, or NODE#N for a node's N-th pipeline). ``shared``: the environment
        its node's ShellExecution pipelines deploy together (their requirements, each once)."""
        host, executor = deployment.node.name, _executor(deployment)
        limits = node_limits(deployment, self.options)
        self.time_limits[executor], self.polls[executor] = limits.play_limit, limits.poll
        self.executors.setdefault(host, []).append(executor)
        environment = deployment.environment_definition
        env_vars = {str(k): str(v) for k, v in environment.runtime_context.environment_variables.items()}
        commands = list(environment.commands)
        deploy_vars, redeploy = env_vars, self.options.redeploy
        if shared is not None:
            commands, deploy_vars = shared.commands, shared.variables
            redeploy = redeploy and shared.first == executor  # rebuilt once, by the node's first pipeline
        self.requirement_counts[executor] = len(commands)
        node_spec = self._node_spec(host, executor, env_vars, limits.time_limit, deployment.imports,
                                    deployment.artifacts)
        deploy_spec = self._deploy_spec(host, commands, deploy_vars, limits.time_limit, redeploy,
                                        self._container(deployment, commands))
        files = {
            "pipeline.pkl": deployment.pipeline,
            "node.json": _json_bytes(node_spec.to_json()),
            "deploy.json": _json_bytes(deploy_spec.to_json()),
        }
        folder = self.run.shipped_dir(executor)
        for file_name, data in files.items():
            write_atomic(folder / file_name, data, 0o600)
        write_atomic(folder / NODE_TAIL_NAME, self.bundles.tail(files), 0o600)

    def _container(self, deployment: Deployment, commands: list[str]) -> ContainerSpec | None:
        host = deployment.node.name
        own = [c for c in commands if c not in getattr(deployment, "host_requirements", [])]
        return container_spec(deployment.environment_definition, host,
                              container_fallback(host, self.inventory.node(host).properties),
                              own_requirements=bool(own), cleanup=getattr(deployment, "cleanup", True))

    def _node_spec(self, host: str, executor: str, env_vars: dict[str, str], time_limit: float,
                   imports: Mapping[str, object], declared: Sequence[object]) -> NodeSpec:
        source = f"node {host}'s specification"
        # where tasks find the run's flags: the controller's socket on a local host, the reverse
        # tunnel's port on the host's loopback over SSH (and netunicorn's variables: NETUNICORN_EXECUTOR_ID
        # is the deployment's executor_id, which cancel_executors takes)
        flags = task_settings(self.flags, _flag_reach(self.inventory, host), executor)
        return NodeSpec(
            node=host,
            deployment=executor,  # echoed in the executor's answers: which of the node's pipelines
            run=self.name,
            environment_variables=env_vars,
            # installed packages the pipeline imports, with the tasks that need them
            imports={top: ImportNeed.from_untrusted(need, f"{source}: imports") for top, need in imports.items()},
            task_timeout=self.options.task_timeout,
            log_cap=self.options.log_cap,
            time_limit=time_limit,
            flags=FlagSettings.from_untrusted(flags, f"{source}: flags"),
            artifacts=ArtifactDeclarations(declared=tuple(
                DeclaredArtifact.from_untrusted(entry, f"{source}: artifacts") for entry in declared)),
        )

    def _deploy_spec(self, host: str, commands: list[str], env_vars: dict[str, str], time_limit: float,
                     redeploy: bool, container: ContainerSpec | None) -> DeploySpec:
        return DeploySpec(
            node=host,
            python=self.python,
            env_dir=f"../../envs/{environment_key(commands, env_vars, self.python)}",
            commands=tuple(commands),
            environment_variables=env_vars,
            redeploy=redeploy,
            requirement_timeout=self.options.requirement_timeout,
            # the node's time limit covers its deployment and its pipeline together
            time_limit=time_limit,
            container=container,
        )

    def playbook_context(self, name: str, run_id: str, hosts: list[str],
                         settings: list[tuple[str, str, str, str]]) -> dict[str, object]:
        project = str(self.run.project)
        return {
            "version": __version__,
            "run": name,
            "run_id": run_id,
            "hosts": hosts,
            "executors": self.executors,
            "bundle_name": NODE_BUNDLE_NAME,
            "final_statuses": [status.value for status in FINAL_STATUSES],
            "requirement_counts": self.requirement_counts,
            "time_limits": self.time_limits,
            "polls": self.polls,
            "start_strategy": start_strategy(self.options),
            "start_round": start_round(self.options, len(hosts), max((len(e) for e in self.executors.values()), default=1)),
            "settings": [(s, k, e, v.replace(project, ".")) for s, k, e, v in settings],
        }


def _json_bytes(data: JSONObject) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def load_templates() -> None:
    """Compile the playbooks' templates now (kept for this process's compile)."""
    for playbook in PLAYBOOKS:
        _templates().get_template(f"{playbook}.j2")


def _write_playbooks(run: RunDir, context: dict[str, object]) -> None:
    templates = _templates()
    for playbook in PLAYBOOKS:
        write_atomic(run.project / playbook, templates.get_template(f"{playbook}.j2").render(context))


def _write_inventory(run: RunDir, inventory: Inventory, hosts: list[str]) -> None:
    """The embedded default inventory as a file, and the hosts' variables without secrets."""
    if inventory.is_default:
        write_atomic(run.default_inventory_file, default_inventory_text())
        # the local machine keeps its host work folders in the home folder (hosts/<host>/...)
        for host in inventory.hostvars:
            write_json(run.inventory_dir / "host_vars" / f"{host}.yml", {"unicorn_remote_root": str(home_dir())})
    write_json(run.inventory_snapshot, inventory.snapshot(hosts))


def _run_record(name: str, run_id: str, hosts: list[str], executors: dict[str, str], inventory: Inventory,
                options: CompileOptions) -> RunRecord:
    return RunRecord(
        name=name,
        run_id=run_id,
        created=time.time(),
        status=RunStatus.COMPILED.value,
        hosts=tuple(hosts),
        # every deployment by its executor id (the node's name, NODE#N for its N-th pipeline) -> its host
        executors=executors,
        inventory=tuple(inventory.sources),
        options=_run_options(options),
        versions=versions(),
    )


def _run_options(options: CompileOptions) -> RunOptions:
    """CompileOptions as run.json keeps them (a field RunOptions does not know yet is kept, as every
    record keeps them); a value of the wrong type is the user's one-line error."""
    try:
        return RunOptions.from_untrusted(asdict(options), "the run's options")
    except WireError as exc:
        raise UsageError(f"{exc}; give it as a number of the right kind") from None


def _flag_reach(inventory: Inventory, host: str) -> FlagReach:
    """How the host's tasks reach the flag store: its connection says (connections/)."""
    return HostConnections.of(inventory, [host])[host].flag_reach


def inventory_args(run_dir: Path, sources: Sequence[str]) -> list[str]:
    """The -i arguments for a run by hand from the project folder."""
    if not sources:
        return ["-i", str(RunDir(run_dir).default_inventory_file)]
    args: list[str] = []
    for source in sources:
        args += ["-i", source]
    return args
