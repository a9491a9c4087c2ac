"""Compile an Experiment into a self-contained run directory (ansible-runner's private data dir).

Compiling touches no host. The run directory holds everything a run needs and
everything it produces::

    run.json                 what was compiled: name, nodes, inventory, versions
    inventory/hosts.yml      the embedded default inventory (user inventories are referenced, never copied)
    inventory-snapshot.json  the experiment's hosts and their variables, secrets removed
    env/envvars              Ansible settings for ansible-runner
    project/                 ansible.cfg, site.yml, deploy.yml, execute.yml, cancel.yml, roles/, callback_plugins/,
                             files/nodes/<node>/unicorn-node.pyz (the executor bundle with the node's files),
                             files/nodes/<node>/{pipeline.pkl,node.json,deploy.json} (readable copies)
    nodes/<node>/            what comes back: status.json (callback), state.json and journal (fetched)
    artifacts/               ansible-runner's own records
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cloudpickle
import jinja2

from .._version import __version__
from .bundle import NODE_BUNDLE_NAME, build_bundle, node_bundle
from ..model.experiment import Experiment
from ..engine.flag_server import ENDPOINT_FILE, new_endpoint, task_settings
from ..inventory import Inventory, default_inventory_text, is_secret
from ..node.protocol import FINAL_STATUSES
from ..resources import callback_plugin, playbooks_dir, roles_dir
from ..errors import ExperimentError, InventoryError, RunError

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
FORKS_CAP = 50
PLAYBOOKS = ("site.yml", "deploy.yml", "execute.yml", "cancel.yml", "ansible.cfg")


@dataclass
class CompileOptions:
    """Settings of a run that are not part of the experiment."""

    forks: Optional[int] = None
    poll_seconds: int = 20
    run_timeout_seconds: int = 86400
    task_timeout: Optional[float] = None
    log_cap: int = 10 * 1024 * 1024
    redeploy: bool = False
    strategy: Optional[str] = None


def check_run_name(name: str) -> str:
    if not RUN_NAME.match(name or ""):
        raise RunError(
            f"run name {name!r} is not allowed; use letters, digits, '.', '_' and '-' "
            "(up to 100 characters, starting with a letter or digit)"
        )
    return name


def _check_host_name(host: str) -> None:
    if "/" in host or host in (".", "..") or "\0" in host:
        raise InventoryError(f"inventory host name {host!r} cannot name a folder; rename the host in the inventory")


def environment_key(commands: Sequence[str], variables: Dict[str, str], python: str) -> str:
    """The name of a node's environment folder: runs with the same requirements share it."""
    text = json.dumps({"commands": list(commands), "variables": variables, "python": python}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ansible_settings(host_count: int, options: CompileOptions, project: Path,
                     flags: Optional[Dict[str, Any]] = None) -> List[Tuple[str, str, str, str]]:
    """Our Ansible settings as (section, key, environment variable, value): one source for
    the generated ansible.cfg and for the environment ansible-runner gets.

    ``flags``: the run's flag store endpoint; every SSH connection then carries a reverse
    tunnel from the host's loopback port to the store's socket on the controller."""
    ssh_args = "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=5 -o ServerAliveCountMax=3"
    if flags:
        # -o, not -R: Ansible gives ssh_args to sftp and scp too, where -R means something else.
        # ExitOnForwardFailure: a host where another program holds the port fails, not its tasks' flags.
        ssh_args += f" -o 'RemoteForward=127.0.0.1:{flags['port']} {flags['socket']}' -o ExitOnForwardFailure=yes"
    forks = options.forks or max(1, min(host_count, FORKS_CAP))
    settings = [
        ("defaults", "forks", "ANSIBLE_FORKS", str(forks)),
        ("defaults", "callback_plugins", "ANSIBLE_CALLBACK_PLUGINS", str(project / "callback_plugins")),
        ("defaults", "callbacks_enabled", "ANSIBLE_CALLBACKS_ENABLED", "unicorn_collector"),
        ("defaults", "roles_path", "ANSIBLE_ROLES_PATH", str(project / "roles")),
        ("defaults", "interpreter_python", "ANSIBLE_PYTHON_INTERPRETER", "auto_silent"),
        ("defaults", "retry_files_enabled", "ANSIBLE_RETRY_FILES_ENABLED", "False"),
        ("defaults", "gathering", "ANSIBLE_GATHERING", "explicit"),
        ("ssh_connection", "pipelining", "ANSIBLE_PIPELINING", "True"),
        # No -C: results files are large and lab links fast. ServerAlive: a host whose link
        # dies is noticed within about 15 s instead of hanging.
        ("ssh_connection", "ssh_args", "ANSIBLE_SSH_ARGS", ssh_args),
    ]
    if options.strategy:
        settings.append(("defaults", "strategy", "ANSIBLE_STRATEGY", options.strategy))
        if options.strategy.startswith("mitogen"):
            settings.append(("defaults", "strategy_plugins", "ANSIBLE_STRATEGY_PLUGINS", _mitogen_strategies()))
    return settings


def _mitogen_strategies() -> str:
    """Where Mitogen's strategy plugins are (pip install mitogen)."""
    try:
        import ansible_mitogen
    except ImportError as exc:
        raise ExperimentError(
            "--strategy mitogen_* needs Mitogen in unicorn-ansible's environment: pip install mitogen"
        ) from exc
    return str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")


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


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def versions() -> Dict[str, str]:
    import ansible
    import ansible_runner
    import cloudpickle
    import returns

    def version_of(module: Any, dist: str) -> str:
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
    options: Optional[CompileOptions] = None,
) -> Path:
    """Write the run directory for ``experiment`` on ``inventory``; return its path."""
    options = options or CompileOptions()
    check_run_name(name)
    if not isinstance(experiment, Experiment):
        raise ExperimentError(f"expected an Experiment, got {type(experiment).__name__}")
    if len(experiment) == 0:
        raise ExperimentError("the experiment has no deployments; add one with experiment.append(node, pipeline)")
    hosts = [deployment.node.name for deployment in experiment]
    missing = [host for host in hosts if host not in inventory]
    if missing:
        known = ", ".join(list(inventory.hostvars)[:10]) or "none"
        raise InventoryError(
            f"node(s) {', '.join(missing)} not in the inventory (its hosts: {known}); "
            "name nodes after inventory hosts, e.g. pick them from the node pool given to experiment(nodes)"
        )
    for host in hosts:
        _check_host_name(host)

    run_dir = Path(run_dir).resolve()
    project = run_dir / "project"
    for folder in ("inventory", "env", "nodes", "artifacts"):
        (run_dir / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("roles", "callback_plugins", "files/nodes"):
        shutil.rmtree(project / folder, ignore_errors=True)
        (project / folder).mkdir(parents=True, exist_ok=True)
    shutil.copytree(roles_dir(), project / "roles", dirs_exist_ok=True)
    shutil.copy2(callback_plugin(), project / "callback_plugins" / callback_plugin().name)
    bundle = build_bundle()

    # The host-side folder of this run: its name plus a random part, so a replaced
    # or recompiled run never finds an older run's files on a host.
    run_id = f"{name}-{secrets.token_hex(4)}"
    python = "%d.%d" % sys.version_info[:2]
    flags = new_endpoint(run_dir, local=any(_is_local(inventory, d.node.name) for d in experiment))
    _write(run_dir / ENDPOINT_FILE, json.dumps(flags, indent=2) + "\n", 0o600)
    requirement_counts: Dict[str, int] = {}
    for deployment in experiment:
        host = deployment.node.name
        folder = project / "files" / "nodes" / host
        environment = deployment.environment_definition
        env_vars = {str(k): str(v) for k, v in environment.runtime_context.environment_variables.items()}
        commands = list(environment.commands)
        requirement_counts[host] = len(commands)
        files = {
            "pipeline.pkl": deployment.pipeline,
            "node.json": (json.dumps({
                "node": host,
                "run": name,
                "environment_variables": env_vars,
                "task_timeout": options.task_timeout,
                "log_cap": options.log_cap,
                # the executor enforces the node's limit itself, controller or not
                "time_limit": (float(deployment.keep_alive_timeout_minutes) * 60
                               if deployment.keep_alive_timeout_minutes else options.run_timeout_seconds),
                # where tasks find the run's flags: the controller's socket on a local host,
                # the reverse tunnel's port on the host's loopback over SSH (and netunicorn's variables)
                "flags": task_settings(flags, _is_local(inventory, host), f"{run_id}-{host}"),
            }, indent=2) + "\n").encode(),
            "deploy.json": (json.dumps({
                "node": host,
                "python": python,
                "env_dir": f"../../envs/{environment_key(commands, env_vars, python)}",
                "commands": commands,
                "environment_variables": env_vars,
                "redeploy": options.redeploy,
            }, indent=2) + "\n").encode(),
        }
        for file_name, data in files.items():  # readable copies of what the node bundle carries
            _write(folder / file_name, data, 0o600)
        _write(folder / NODE_BUNDLE_NAME, node_bundle(bundle, files), 0o600)

    # per-deployment time limits (seconds), where a deployment sets one
    limits = {d.node.name: int(float(d.keep_alive_timeout_minutes) * 60) for d in experiment
              if getattr(d, "keep_alive_timeout_minutes", None)}
    settings = ansible_settings(len(hosts), options, project, flags)
    context = {
        "deployment_timeouts": limits,
        "final_statuses": [status.value for status in FINAL_STATUSES],
        "version": __version__,
        "run": name,
        "run_id": run_id,
        "hosts": hosts,
        "requirement_counts": requirement_counts,
        "poll_seconds": max(1, min(int(options.poll_seconds), int(options.run_timeout_seconds))),
        "run_timeout_seconds": int(options.run_timeout_seconds),
        "settings": [(s, k, e, v.replace(str(project), ".")) for s, k, e, v in settings],
    }
    templates = _templates()
    for playbook in PLAYBOOKS:
        _write(project / playbook, templates.get_template(f"{playbook}.j2").render(context))

    if inventory.is_default:
        _write(run_dir / "inventory" / "hosts.yml", default_inventory_text())
    snapshot = {host: {k: v for k, v in inventory.node(host).properties.items() if not is_secret(k, v)} for host in hosts}
    _write(run_dir / "inventory-snapshot.json", json.dumps(snapshot, indent=2, default=str) + "\n")
    _write(run_dir / "env" / "envvars", json.dumps({e: v for _, _, e, v in settings}, indent=2) + "\n")

    record = {
        "name": name,
        "run_id": run_id,
        "created": time.time(),
        "status": "compiled",
        "hosts": hosts,
        "inventory": inventory.sources,
        "options": asdict(options),
        "versions": versions(),
    }
    _write(run_dir / "run.json", json.dumps(record, indent=2) + "\n")
    # The experiment itself, for the client's get_experiment_status (a controller-side file).
    _write(run_dir / "experiment.pkl", cloudpickle.dumps(experiment), 0o600)
    return run_dir


def _is_local(inventory: Inventory, host: str) -> bool:
    connection = str(inventory.node(host).properties.get("ansible_connection", ""))
    return connection in ("local", "ansible.builtin.local")


def inventory_args(run_dir: Path, sources: Sequence[str]) -> List[str]:
    """The -i arguments for a run by hand from the project folder."""
    if not sources:
        return ["-i", str(Path(run_dir) / "inventory" / "hosts.yml")]
    args: List[str] = []
    for source in sources:
        args += ["-i", source]
    return args
