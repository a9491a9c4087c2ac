"""Running experiments: load an experiment file, compile it into a run directory,
run the generated playbooks with ansible-runner, read the results back."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from ..compiler.compile import CompileOptions, check_run_name, compile_experiment
from ..model.experiment import Experiment
from .flag_server import serve_flags
from ..home import runs_dir
from ..inventory import Inventory, ensure_ansible_on_path, load_inventory
from ..model.nodes import CountableNodePool
from ..results.load import RunResults, load_results
from ..errors import ExperimentError, RunError

EventHandler = Callable[[Dict[str, Any]], None]


def load_experiment_file(path: str, nodes: CountableNodePool) -> Experiment:
    """Run an experiment file and return its ``experiment``: an Experiment, or a callable
    that takes the inventory's node pool and returns one."""
    file = Path(path)
    if not file.is_file():
        raise ExperimentError(f"experiment file {path} does not exist")
    try:
        namespace = runpy.run_path(str(file), run_name="__unicorn_experiment__")
    except SyntaxError as exc:
        raise ExperimentError(f"{path}, line {exc.lineno}: {exc.msg}; fix the syntax error") from exc
    except ExperimentError:
        raise
    except Exception as exc:
        raise ExperimentError(f"{path} raised {type(exc).__name__}: {exc}") from exc
    if "experiment" not in namespace:
        raise ExperimentError(
            f"{path} defines no 'experiment'; set experiment = Experiment()... or def experiment(nodes): ..."
        )
    value = namespace["experiment"]
    if callable(value) and not isinstance(value, Experiment):
        try:
            value = value(nodes)
        except ExperimentError:
            raise
        except Exception as exc:
            raise ExperimentError(f"{path}: experiment(nodes) raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(value, Experiment):
        raise ExperimentError(
            f"{path}: 'experiment' is a {type(value).__name__}; it must be an Experiment "
            "or a function that takes the node pool and returns one"
        )
    return value


def run_path(name: str) -> Path:
    return runs_dir() / check_run_name(name)


def new_run_name(stem: str) -> str:
    """A unique, readable run name: <stem>-<date>-<time>[-N]."""
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip("-._") or "run"
    base = f"{base[:60]}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, number = base, 2
    while (runs_dir() / name).exists():
        name, number = f"{base}-{number}", number + 1
    return name


def prepare_run_dir(name: str, replace: bool = False) -> Path:
    path = run_path(name)
    if path.exists():
        if not replace:
            raise RunError(f"a run named {name} exists; choose another --name or pass --replace to overwrite it")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def update_run_record(run_dir: Path, **changes: Any) -> None:
    path = run_dir / "run.json"
    record = json.loads(path.read_text())
    record.update(changes)
    tmp = path.with_name(f".run.json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


@dataclass(frozen=True)
class Secrets:
    """Passwords typed by the user. They go to Ansible's prompts through ansible-runner's
    pexpect answers only: never into a file, an environment variable or a log."""

    become_password: Optional[str] = None
    connection_password: Optional[str] = None

    def runner_arguments(self) -> Dict[str, Any]:
        flags, answers = [], {}
        if self.become_password is not None:
            flags.append("--ask-become-pass")
            answers[r"^BECOME password.*:\s*?$"] = self.become_password
        if self.connection_password is not None:
            flags.append("--ask-pass")
            answers[r"^SSH password:\s*?$"] = self.connection_password
        return {"cmdline": " ".join(flags), "passwords": answers} if flags else {}


def run_playbook(
    run_dir: Path,
    playbook: str,
    inventory: Inventory,
    event_handler: Optional[EventHandler] = None,
    cancel_callback: Optional[Callable[[], bool]] = None,
    secrets: Optional[Secrets] = None,
) -> int:
    """Run one of the run directory's playbooks with ansible-runner; return its exit code."""
    ensure_ansible_on_path()
    import ansible_runner

    # suppress_env_files: ansible-runner would otherwise write passwords to env/passwords.
    kwargs: Dict[str, Any] = {"suppress_env_files": True}
    kwargs.update((secrets or Secrets()).runner_arguments())
    if inventory.sources:
        kwargs["inventory"] = list(inventory.sources)
    runner = ansible_runner.run(
        private_data_dir=str(run_dir),
        playbook=playbook,
        quiet=True,
        event_handler=(lambda event: (event_handler(event), True)[1]) if event_handler else None,
        cancel_callback=cancel_callback,
        **kwargs,
    )
    return int(runner.rc if runner.rc is not None else 1)


def run_experiment(
    experiment: Experiment,
    inventory: Optional[Inventory] = None,
    name: Optional[str] = None,
    replace: bool = False,
    options: Optional[CompileOptions] = None,
    event_handler: Optional[EventHandler] = None,
    secrets: Optional[Secrets] = None,
) -> RunResults:
    """Compile and run an experiment; block until every node is done; return the results."""
    inventory = inventory or load_inventory(None)
    name = name or new_run_name("experiment")
    check_run_name(name)
    run_dir = prepare_run_dir(name, replace)
    try:
        compile_experiment(experiment, inventory, run_dir, name, options)
    except Exception:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    update_run_record(run_dir, status="running", started=time.time())
    with serve_flags(run_dir):
        rc = run_playbook(run_dir, "site.yml", inventory, event_handler, secrets=secrets)
    cancelled = json.loads((run_dir / "run.json").read_text()).get("status") == "cancelled"
    update_run_record(run_dir, status="cancelled" if cancelled else "finished", finished=time.time(), ansible_rc=rc)
    return load_results(run_dir)


def run(
    experiment: Experiment,
    inventory: Optional[Sequence[str]] = None,
    name: Optional[str] = None,
    replace: bool = False,
    **options: Any,
) -> RunResults:
    """Run ``experiment`` on the hosts of ``inventory`` (default: the local machine) and return its results.

    ``options`` are CompileOptions fields: forks, poll_seconds, run_timeout_seconds,
    task_timeout, log_cap, redeploy, strategy.
    """
    return run_experiment(experiment, load_inventory(inventory), name, replace, CompileOptions(**options))


def run_inventory(run_dir: Path) -> Inventory:
    """The inventory a run was compiled for (its sources are re-read: they may have changed)."""
    record = json.loads((Path(run_dir) / "run.json").read_text())
    return load_inventory(record.get("inventory") or None)


def cancel_run(run_dir: Path, inventory: Optional[Inventory] = None,
               event_handler: Optional[EventHandler] = None) -> RunResults:
    """Stop every node's executor and the processes its tasks started; fetch what finished."""
    inventory = inventory or run_inventory(run_dir)
    update_run_record(run_dir, cancel_requested=time.time())
    rc = run_playbook(run_dir, "cancel.yml", inventory, event_handler)
    update_run_record(run_dir, status="cancelled", cancelled=time.time(), cancel_rc=rc)
    return load_results(run_dir)


def collect_run(run_dir: Path, inventory: Optional[Inventory] = None,
                event_handler: Optional[EventHandler] = None) -> RunResults:
    """Fetch a run's results again, waiting for pipelines still running (none is started twice)."""
    inventory = inventory or run_inventory(run_dir)
    rc = run_playbook(run_dir, "execute.yml", inventory, event_handler)
    record = json.loads((Path(run_dir) / "run.json").read_text())
    if record.get("status") != "cancelled":
        update_run_record(run_dir, status="finished", collected=time.time(), ansible_rc=rc)
    return load_results(run_dir)
