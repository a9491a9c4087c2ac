"""The Python client: netunicorn's client verbs over the Ansible engine.

    from unicorn_ansible import Client, Experiment, ExperimentStatus

    client = Client()                                  # the local machine; Client(inventory="lab.ini") for a lab
    nodes = client.get_nodes()
    experiment = Experiment().map(pipeline, nodes.take(1))
    client.prepare_experiment(experiment, "demo")      # returns at once; the deployment play runs in the background
    while client.get_experiment_status("demo").status == ExperimentStatus.PREPARING:
        time.sleep(1)
    client.start_execution("demo")                     # likewise for the execution play
    while client.get_experiment_status("demo").status != ExperimentStatus.FINISHED:
        time.sleep(1)
    for result in client.get_experiment_status("demo").execution_result:
        print(result.node, result.result, result.error)

Every run lives in its run directory, so any process (the CLI, another notebook)
sees the same status; the background work is a controller process of the run's own
(engine/detached.py), which outlives this one.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
from returns.result import Failure, Result, Success

from ..compat.netunicorn import as_experiment, for_netunicorn
from ..compiler.settings import CompileOptions
from ..engine import lifecycle, rundir
from ..engine.controller import CONTROLLER_GRACE, is_alive
from ..engine.detached import DEPLOY, EXECUTE, start_controller
from ..engine.flag_server import flag_request
from ..engine.lifecycle import EngineOptions, Secrets, run_inventory
from ..engine.rundir import RunDir, RunStatus
from ..errors import RunError, UsageError
from ..home import runs_dir
from ..inventory import Inventory, load_inventory
from ..model.experiment import Experiment
from ..model.flags import FlagValues
from ..model.foreign import TwinEnum
from ..model.nodes import CountableNodePool, Node
from ..results.artifacts import Artifact
from ..results.load import NodeResult, RunResults, load_results
from ..results.status import NodeStatus

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack


class ExperimentStatus(TwinEnum):
    """netunicorn's experiment statuses (equal to netunicorn's member of the same name: its
    notebooks compare ours with its ``ExperimentStatus``)."""

    UNKNOWN = 0
    PREPARING = 1
    READY = 2
    RUNNING = 3
    FINISHED = 4


# the run record's status -> ExperimentStatus
_STATUS = {
    RunStatus.COMPILED.value: ExperimentStatus.PREPARING,
    RunStatus.PREPARING.value: ExperimentStatus.PREPARING,
    RunStatus.READY.value: ExperimentStatus.READY,
    RunStatus.RUNNING.value: ExperimentStatus.RUNNING,
    RunStatus.FINISHED.value: ExperimentStatus.FINISHED,
    RunStatus.CANCELLED.value: ExperimentStatus.FINISHED,
}


#: the error of a deployment that was never started because its preparation failed (netunicorn's words)
NOT_PREPARED = "Executor is not prepared"


class DeploymentExecutionResult:
    """One deployment's execution result, as netunicorn's client gives it: ``node`` (the Node it ran
    on), ``executor_id`` (the node's name, or ``NODE#N`` for its N-th pipeline) and ``pipeline``.
    A deployment whose preparation failed was not started: its ``error`` is netunicorn's
    "Executor is not prepared", followed by the preparation's error.

    ``result`` is ``(Success(tasks) or Failure(tasks), logs)`` where ``tasks`` maps
    task names to lists of Results; ``error`` says why a node failed; ``status`` is
    one of ok / failed / deploy_failed / execution_failed / unreachable / not_run.
    """

    def __init__(self, outcome: NodeResult, node: Node, logs: list[str] | Callable[[], list[str]],
                 pipeline: bytes = b"") -> None:
        self.node = node
        self.executor_id = outcome.executor_id
        self.outcome = outcome
        self.error: str | None = outcome.error if outcome.prepared else \
            f"{NOT_PREPARED}: {outcome.error or 'its deployment did not finish'}"
        self.status = outcome.status
        # read when first asked for: get_experiments() builds one for every deployment of every run
        self._logs: list[str] | Callable[[], list[str]] = logs
        self._pipeline = pipeline

    @property
    def pipeline(self) -> object:
        """The pipeline this deployment ran, its TaskDispatchers dispatched for its node (as
        netunicorn's ``DeploymentExecutionResult.pipeline``); a ValueError if the run has none."""
        if not self._pipeline:
            raise ValueError("Execution graph information is not available.")
        return cloudpickle.loads(self._pipeline)  # written by this controller, not by a host

    @property
    def result(self) -> tuple[Result[dict[str, list[Any]], dict[str, list[Any]]], list[str]] | None:
        if not self.outcome.tasks and self.outcome.status in (
                NodeStatus.UNREACHABLE, NodeStatus.DEPLOY_FAILED, NodeStatus.NOT_RUN):
            return None
        tasks = self.outcome.tasks
        wrapped: Result[dict[str, list[Any]], dict[str, list[Any]]] = Success(tasks) if self.outcome.success \
            else Failure(tasks)
        return wrapped, self.logs

    @property
    def logs(self) -> list[str]:
        """The deployment's task logs, line by line (read from the run folder once)."""
        if callable(self._logs):
            self._logs = self._logs()
        return self._logs

    @property
    def artifacts(self) -> list[Artifact]:
        """The files this node's tasks left (``Artifact``: task, path, size, sha256, file, left)."""
        return self.outcome.artifacts

    def __str__(self) -> str:
        executor = f"\n  Executor: {self.executor_id}" if self.executor_id != self.outcome.node else ""
        text = f"DeploymentExecutionResult:\n  Node: {self.node}{executor}\n  Status: {self.status}\n"
        for name, results in self.outcome.tasks.items():
            text += f"    {name}: {results}\n"
        if self.error:
            text += f"  Error: {self.error}\n"
        return text

    __repr__ = __str__


@dataclass(frozen=True)
class ExperimentExecutionInformation:
    """What get_experiment_status returns: status, the experiment, the per-node results."""

    status: ExperimentStatus
    experiment: Experiment | None
    execution_result: None | Exception | list[DeploymentExecutionResult]


class Client:
    """netunicorn's client verbs, run by Ansible on the hosts of ``inventory``.

    :param inventory: inventory sources (a path or a list of paths); None: the local machine
    :param forks: hosts worked on in parallel (default: all, up to 50)
    :param trust_results: load every result fully, also those the restricted loader refuses
        (a :class:`Refused` otherwise); only for hosts you trust
    :param become_password: sudo's password on the hosts (``getpass()``), for tasks and
        requirements that use become; never written anywhere
    :param connection_password: the SSH password of hosts without keys; likewise
    :param options: the run's other options, as ``run()`` takes them (engine/lifecycle.py's
        EngineOptions: task_timeout, run_timeout_seconds, requirement_timeout, poll_seconds,
        log_cap, artifact_cap, redeploy, strategy)

    Each run is played by a controller process of its own (engine/detached.py): it goes on when
    this process ends (a notebook kernel restart, a script that exits), and any Client or the
    command line sees the same run.
    """

    def __init__(self, inventory: str | Path | Sequence[str | Path] | None = None, forks: int | None = None,
                 trust_results: bool = False, *, become_password: str | None = None,
                 connection_password: str | None = None, **options: Unpack[EngineOptions]) -> None:
        self.trust_results = trust_results
        sources = [inventory] if isinstance(inventory, (str, Path)) else list(inventory or [])
        self.inventory: Inventory = load_inventory([str(s) for s in sources])
        self.options = CompileOptions(forks=forks, **options)
        # handed to each run's controller on a pipe (engine/detached.py), kept in memory only
        self._secrets = Secrets(become_password, connection_password)

    # -- nodes and health ----------------------------------------------------------
    def get_nodes(self) -> CountableNodePool:
        """The inventory's hosts as a node pool (its nodes netunicorn Nodes too once netunicorn is
        in use: netunicorn's ``Experiment.map`` takes them)."""
        return for_netunicorn(self.inventory.nodes())

    def healthcheck(self) -> bool:
        """True when Ansible can be run and the home folder is writable."""
        from ..inventory import ensure_ansible_on_path

        ensure_ansible_on_path()
        runs_dir().mkdir(parents=True, exist_ok=True)
        return shutil.which("ansible-playbook") is not None

    # -- the experiment's lifetime (engine/lifecycle.py, as for the CLI) ------------
    def prepare_experiment(self, experiment: Experiment, experiment_name: str,
                           deployment_context: dict[str, dict[str, str]] | None = None) -> str:
        """Compile the experiment and run its deployment play in the background; returns the name.

        ``deployment_context`` (netunicorn's, for its connectors) is merged into the experiment's
        and kept with it; this engine has no connectors to hand it to."""
        experiment = as_experiment(experiment)
        if deployment_context is not None:
            experiment.deployment_context = {**(experiment.deployment_context or {}), **deployment_context}
        run = lifecycle.prepare(experiment, self.inventory, experiment_name, self.options)
        start_controller(run, DEPLOY, self._secrets)
        return experiment_name

    def start_execution(self, experiment_name: str,
                        execution_context: dict[str, dict[str, str]] | None = None) -> str:
        """Run the execution play of a prepared experiment in the background, on the deployments
        that were prepared: one whose preparation failed is not started and keeps its error
        ("Executor is not prepared: ...", as netunicorn).

        ``execution_context`` (netunicorn's, for its connectors) is accepted and not used."""
        start_controller(self._find(experiment_name), EXECUTE, self._secrets)
        return experiment_name

    def run(self, experiment: Experiment, experiment_name: str, poll: float = 0.5) -> RunResults:
        """Prepare, execute and wait: return the results (blocking)."""
        self.prepare_experiment(experiment, experiment_name)
        self.wait(experiment_name, ExperimentStatus.READY, poll)
        self.start_execution(experiment_name)
        self.wait(experiment_name, ExperimentStatus.FINISHED, poll)
        return load_results(self._run_dir(experiment_name), trust=self.trust_results)

    def wait(self, experiment_name: str, status: ExperimentStatus, poll: float = 0.5,
             timeout: float | None = None) -> ExperimentStatus:
        """Block until the experiment reaches ``status`` (or a later one); a RunError if its
        controller died on the way (``unicorn-ansible collect`` fetches what the hosts finished)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        run = self._find(experiment_name)
        while True:
            record = run.record()
            current = _STATUS.get(record.get("status", ""), ExperimentStatus.UNKNOWN)
            if current.value >= status.value:
                return current
            if lifecycle.controller_died(record):
                raise RunError(f"experiment {experiment_name}'s controller (pid {_pid(record)}) died while it was "
                               f"{current.name}; fetch what the hosts finished with: unicorn-ansible collect "
                               f"{experiment_name}")
            if deadline is not None and time.monotonic() > deadline:
                raise RunError(f"experiment {experiment_name} is still {current.name} after {timeout} s")
            time.sleep(poll)

    def get_experiment_status(self, experiment_name: str) -> ExperimentExecutionInformation:
        """Status, the experiment (deployments' prepared and error filled in) and the per-node results."""
        run_dir = self._run_dir(experiment_name)
        status = self._status(run_dir)
        experiment = self._experiment(run_dir)
        results = load_results(run_dir, trust=self.trust_results)
        if experiment is not None:
            for deployment in experiment:
                deployment.executor_id = deployment.executor_id or deployment.node.name
                outcome = results[deployment.executor_id]
                deployment.prepared = outcome.prepared
                deployment.error = Exception(outcome.error) if outcome.error and not outcome.prepared else None
                deployment.notices = [outcome.notice] if outcome.notice else []
        execution: list[DeploymentExecutionResult] | None = None
        if status in (ExperimentStatus.RUNNING, ExperimentStatus.FINISHED):
            nodes = {d.node.name: d.node for d in experiment} if experiment is not None else {}
            pipelines = {d.executor_id: d.pipeline for d in experiment} if experiment is not None else {}
            execution = [
                DeploymentExecutionResult(outcome, nodes.get(outcome.node, Node(outcome.node, {})),
                                          functools.partial(self._logs, run_dir, outcome.executor_id),
                                          pipelines.get(outcome.executor_id, b""))
                for outcome in results
            ]
        return ExperimentExecutionInformation(status, experiment, execution)

    def get_experiments(self) -> dict[str, ExperimentExecutionInformation]:
        """Every run in the home folder with its status, experiment and results (netunicorn's shape)."""
        folder = runs_dir()
        if not folder.exists():
            return {}
        return {path.name: self.get_experiment_status(path.name)
                for path in sorted(folder.iterdir()) if RunDir(path).exists()}

    def delete_experiment(self, experiment_name: str) -> None:
        """Remove a run's folder from the controller (hosts keep their work folders). A run still
        being played is refused; one whose controller is writing its last records (a cancel just
        finished it) is deleted once that controller has ended."""
        run = self._find(experiment_name)
        record = run.record()
        if lifecycle.is_playing(record):
            raise RunError(f"experiment {experiment_name} is still {self._status(run.path).name} (its controller, "
                           f"pid {_pid(record)}, plays it); cancel_experiment({experiment_name!r}) first, or wait "
                           "until it is FINISHED")
        lifecycle.wait_for_controller(record, CONTROLLER_GRACE)
        if is_alive(record.get("controller")):
            raise RunError(f"experiment {experiment_name} is finished but its controller (pid {_pid(record)}) is "
                           f"still writing its results after {CONTROLLER_GRACE:.0f} s; try again in a moment")
        lifecycle.delete_run(run)

    def cancel_experiment(self, experiment_name: str,
                          cancellation_context: dict[str, dict[str, str]] | None = None) -> None:
        """Stop the executors on every node of the experiment; it stays cancelled, even when
        its background play ends afterwards. ``cancellation_context`` (netunicorn's, for its
        connectors) is accepted and not used."""
        lifecycle.cancel(self._find(experiment_name), self.inventory)

    def cancel_executors(self, executors: str | Iterable[str], *more: Iterable[str] | dict[str, dict[str, str]] | None,
                         cancellation_context: dict[str, dict[str, str]] | None = None) -> None:
        """Stop some executors; the others go on. netunicorn's form, ``cancel_executors(executors,
        cancellation_context=None)``, finds each executor's run among those being played; ours,
        ``cancel_executors(experiment_name, executors)``, names the run first (an executor id is the
        deployment's node name, ``NODE#N`` for a node's N-th pipeline, so several runs may have it).
        ``cancellation_context`` (netunicorn's, for its connectors) is accepted and not used."""
        if isinstance(executors, str):  # ours: the run's name, then its executors
            named = more[0] if more else None
            if named is None or isinstance(named, (str, dict)):
                raise UsageError(f"cancel_executors({executors!r}, ...) names a run but no executors: pass "
                                 "(experiment_name, [executor ids]), or netunicorn's ([executor ids])")
            by_run = {executors: [str(e) for e in named]}
        else:
            by_run = _runs_of_executors([str(e) for e in executors])
        for name, executors in by_run.items():
            run = self._find(name)
            known = set(rundir.executors(run.record()))
            unknown = [e for e in executors if e not in known]
            if unknown:
                raise RunError(f"experiment {name} has no executor {', '.join(unknown)}; "
                               f"its executors: {', '.join(sorted(known))}")
            lifecycle.cancel_nodes(run, executors, self._inventory_of(run))

    # -- flags ---------------------------------------------------------------------
    def get_flag_values(self, experiment_name: str, flag_name: str) -> FlagValues:
        """A flag of the experiment, from its live store or, when it is not executing, from its run
        folder; a RunError (a RemoteClientException, as netunicorn's) if it was never set."""
        value = flag_request(self._run_dir(experiment_name), {"op": "get", "name": flag_name})["value"]
        if value is None:
            raise RunError(f"flag {flag_name} not found for experiment {experiment_name}; set it with "
                           "set_flag_values (or a task's SetFlagTask) first")
        return FlagValues.from_dict(value)

    def set_flag_values(self, experiment_name: str, flag_name: str, flag_values: FlagValues) -> FlagValues:
        """Set a flag of the experiment; tasks waiting for that value go on at once."""
        message = {"op": "set", "name": flag_name, "value": flag_values.dict()}
        return FlagValues.from_dict(flag_request(self._run_dir(experiment_name), message)["value"])

    def get_flags(self, experiment_name: str) -> dict[str, FlagValues]:
        """Every flag of the experiment."""
        flags = flag_request(self._run_dir(experiment_name), {"op": "list"})["flags"]
        return {name: FlagValues.from_dict(value) for name, value in flags.items()}

    # -- helpers -------------------------------------------------------------------
    def _inventory_of(self, run: RunDir) -> Inventory:
        """The run's inventory: this client's when the run was compiled for it (read once), else re-read."""
        same = list(run.record().get("inventory") or []) == list(self.inventory.sources)
        return self.inventory if same else run_inventory(run)

    @staticmethod
    def _find(name: str) -> RunDir:
        return lifecycle.find_run(name, "experiment", "get_experiments()")

    def _run_dir(self, name: str) -> Path:
        return self._find(name).path

    @staticmethod
    def _status(run_dir: Path) -> ExperimentStatus:
        return _STATUS.get(RunDir(run_dir).record().get("status", ""), ExperimentStatus.UNKNOWN)

    @staticmethod
    def _experiment(run_dir: Path) -> Experiment | None:
        path = RunDir(run_dir).experiment_file
        if not path.exists():
            return None
        experiment = cloudpickle.loads(path.read_bytes())  # written by this controller, not by a host
        return experiment if isinstance(experiment, Experiment) else None

    @staticmethod
    def _logs(run_dir: Path, node: str) -> list[str]:
        folder = RunDir(run_dir).node_logs_dir(node)
        if not folder.is_dir():
            return []
        return [line for path in sorted(folder.glob("*.log")) for line in path.read_text(errors="replace").splitlines(True)]

    # -- campaigns -----------------------------------------------------------------
    def sweep(self, experiment: Any, parameters: dict[str, Any] | None = None, *, name: str, repeat: int = 1,
              order: str = "random", seed: int | None = None, retries: int = 1) -> Any:
        """Run every combination of ``parameters`` × ``repeat`` as runs of the campaign ``name`` on
        this client's inventory, with its options; return the :class:`Campaign`. The arguments mean
        what ``unicorn_ansible.sweep``'s do; it blocks until the sweep ends."""
        from dataclasses import asdict

        from ..campaign.start import sweep as run_campaign

        return run_campaign(experiment, parameters, name=name, repeat=repeat, order=order, seed=seed,
                            retries=retries, inventory=self.inventory, **asdict(self.options))

def _pid(record: dict[str, Any]) -> str:
    return str((record.get("controller") or {}).get("pid", "?"))


def _runs_of_executors(executors: list[str]) -> dict[str, list[str]]:
    """netunicorn's cancel_executors names executors only: each one's run, among the runs being
    played (a UsageError naming the runs if that is none, or more than one)."""
    playing = {}
    for path in sorted(runs_dir().iterdir()) if runs_dir().is_dir() else []:
        record = rundir.read_json(path / rundir.RECORD)
        if record is not None and lifecycle.is_playing(record):
            playing[path.name] = set(rundir.executors(record))
    by_run: dict[str, list[str]] = {}
    for executor in executors:
        runs = [name for name, known in playing.items() if executor in known]
        if len(runs) != 1:
            where = f"runs {', '.join(runs)} have it" if runs else "no run being played has it"
            raise UsageError(f"cannot tell which run's executor {executor} to cancel: {where}; "
                             "name the run: cancel_executors(experiment_name, [executor ids])")
        by_run.setdefault(runs[0], []).append(executor)
    return by_run
