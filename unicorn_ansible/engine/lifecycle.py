"""A run's lifetime, for the CLI and the Client alike: load an experiment file, prepare (compile
into a run folder), deploy, execute, cancel, collect. Each step records its progress in the
run's record under the run folder's lock; once cancelled, a run stays cancelled whatever
step ends after the cancel."""

from __future__ import annotations

import contextlib
import os
import runpy
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypedDict

from ..compat.netunicorn import as_experiment, for_netunicorn
from ..compiler.compile import check_run_name, compile_experiment
from ..compiler.settings import CompileOptions
from ..errors import ExperimentError, RunError, UsageError
from ..home import make_private_dir, private_files, runs_dir
from ..inventory import Inventory, load_inventory
from ..model.experiment import Experiment
from ..model.nodes import CountableNodePool
from ..model.travel import EXPERIMENT_MODULE
from ..results.load import RunResults, load_results
from .controller import is_alive, this_controller
from .drivers import EventHandler, HostGroup, PlayOptions, close_groups, local_groups, play_groups
from .drivers import Secrets as Secrets  # the CLI and the client name it from here
from .flag_server import serve_flags
from .interrupt import StopSignal, noting_stop_signals
from .rundir import RunDir, RunStatus, Stored, executors

SITE, DEPLOY, EXECUTE, CANCEL = "site.yml", "deploy.yml", "execute.yml", "cancel.yml"


def load_experiment_file(path: str, nodes: Callable[[], CountableNodePool],
                         arguments: Callable[[object], Mapping[str, object]] | None = None) -> Experiment:
    """Run an experiment file and return its ``experiment``: an Experiment, or a callable
    that takes the inventory's node pool (``nodes()``, asked for only then: the file runs while
    Ansible still reads the inventory) and returns one. ``arguments``, given the file's
    ``experiment``, says the keyword arguments it is called with (its parameters:
    campaign/parameters.py).

    As with ``python FILE``, the file's folder is importable while it loads (its modules and
    packages travel to the hosts by value, see model/travel.py); afterwards the modules it
    imported from there are forgotten, so another experiment's folder can have its own."""
    file = Path(path)
    if not file.is_file():
        raise ExperimentError(f"experiment file {path} does not exist")
    with _importable(file.resolve().parent), _os_exit_raises():
        value = _experiment_of(path, _run_file(path, file), nodes, arguments)
    if not isinstance(value, Experiment):
        raise ExperimentError(
            f"{path}: 'experiment' is a {type(value).__name__}; it must be an Experiment "
            "or a function that takes the node pool and returns one"
        )
    return value


@contextlib.contextmanager
def _importable(folder: Path) -> Iterator[None]:
    """``folder`` first on sys.path; afterwards, the modules imported from it are forgotten."""
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if isinstance(module_file, str) and Path(module_file).resolve().is_relative_to(folder):
                del sys.modules[name]


class _OsExit(BaseException):
    """os._exit(code) called by an experiment file while it loads (a BaseException, as SystemExit:
    the file's own ``except Exception`` does not take it)."""

    def __init__(self, code: object) -> None:
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def _os_exit_raises() -> Iterator[None]:
    """While an experiment file loads (and its experiment(nodes) runs), ``os._exit(code)`` raises
    instead of ending this process at once with the file's code and no word (0 looked like
    success); afterwards it is os._exit again."""
    real = os._exit

    def refused(status: int) -> NoReturn:
        raise _OsExit(status)

    os._exit = refused
    try:
        yield
    finally:
        os._exit = real


def _one_line(exc: BaseException, limit: int = 2000) -> str:
    """An exception's message as one line (an error is one line on stderr)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else f"{text[:limit]}..."


def _run_file(path: str, file: Path) -> dict[str, object]:
    try:
        return runpy.run_path(str(file), run_name=EXPERIMENT_MODULE)
    except SyntaxError as exc:
        raise ExperimentError(f"{path}, line {exc.lineno}: {exc.msg}; fix the syntax error") from exc
    except (SystemExit, _OsExit) as exc:
        call = "os._exit" if isinstance(exc, _OsExit) else "sys.exit"
        raise ExperimentError(f"{path} called {call}({exc.code!r}) while loading; an experiment file "
                              "defines `experiment` and returns") from None
    except ExperimentError:
        raise
    except Exception as exc:
        raise ExperimentError(f"{path} raised {type(exc).__name__}: {_one_line(exc)}") from exc


def _experiment_of(path: str, namespace: Mapping[str, object], nodes: Callable[[], CountableNodePool],
                   arguments: Callable[[object], Mapping[str, object]] | None = None) -> object:
    """The file's ``experiment``, called with the node pool (and ``arguments``) if it is a function."""
    if "experiment" not in namespace:
        raise ExperimentError(
            f"{path} defines no 'experiment'; set experiment = Experiment()... or def experiment(nodes): ..."
        )
    value = as_experiment(namespace["experiment"])
    keywords = arguments(value) if arguments is not None else {}
    if callable(value) and not isinstance(value, Experiment):
        pool = for_netunicorn(nodes())  # outside the try: an inventory's error is its own, not the experiment's
        try:
            value = value(pool, **keywords)
        except ExperimentError:
            raise
        except (SystemExit, _OsExit) as exc:
            call = "os._exit" if isinstance(exc, _OsExit) else "sys.exit"
            raise ExperimentError(f"{path}: experiment(nodes) called {call}({exc.code!r})") from None
        except Exception as exc:
            raise ExperimentError(f"{path}: experiment(nodes) raised {type(exc).__name__}: {_one_line(exc)}") from exc
        value = as_experiment(value)
    return value


def _groups(run: RunDir, inventory: Inventory) -> list[HostGroup]:
    """The host groups that play the run's steps, each with its driver (engine/drivers.py)."""
    return local_groups(run, inventory, run.record().get("hosts") or [])


def run_path(name: str) -> RunDir:
    """The folder of the run ``name`` in the home folder (it may not exist)."""
    return RunDir(runs_dir() / check_run_name(name))


def find_run(name: str, noun: str = "run", listing: str = "`unicorn-ansible list`") -> RunDir:
    """The run ``name`` in the home folder; a UsageError naming ``listing`` if there is none."""
    run = run_path(name)
    if not run.exists():
        raise UsageError(f"no {noun} named {name}; see {listing}")
    return run


def new_run_name(stem: str) -> str:
    """A unique, readable run name: <stem>-<date>-<time>[-N]."""
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip("-._") or "run"
    base = f"{base[:60]}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, number = base, 2
    while (runs_dir() / name).exists():
        name, number = f"{base}-{number}", number + 1
    return name


def taken_name_error(run: RunDir) -> UsageError:
    """The error for a new run whose name a folder in the home already has."""
    if run.exists():
        return UsageError(f"a run named {run.name} exists; choose another --name or pass --replace to overwrite it")
    return UsageError(f"a folder of a run named {run.name} is left without its run.json (a delete cut short?); "
                      f"remove it with `unicorn-ansible delete {run.name} --yes`, choose another --name, "
                      "or pass --replace")


def _new_run_folder(name: str, replace: bool) -> RunDir:
    run = run_path(name)
    if run.path.exists():
        if not replace:
            raise taken_name_error(run)
        delete_run(run, "replaced")
    make_private_dir(runs_dir())
    run.path.mkdir(mode=0o700)
    return run


def prepare(experiment: Experiment, inventory: Inventory, name: str, options: CompileOptions | None = None,
            replace: bool = False) -> RunDir:
    """Compile ``experiment`` into a new run folder in the home folder (status ``compiled``);
    nothing half-made is left behind when compiling fails."""
    run = _new_run_folder(check_run_name(name), replace)
    try:
        with private_files():
            compile_experiment(experiment, inventory, run.path, name, options)
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)
        raise
    return run


def _tree_size(folder: Path) -> tuple[int, int]:
    """How many files a folder holds, and their bytes (links and folders not counted)."""
    files = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(root, name))
                files, size = files + 1, size + (info.st_size if stat.S_ISREG(info.st_mode) else 0)
    return files, size


def delete_run(run: RunDir, doing: str = "deleted") -> str:
    """Remove a run's folder, under its busy lock (a collect or cancel of it is refused meanwhile,
    and this is refused during theirs). It works from the folder alone: an unreadable run.json is
    no reason to keep it. The folder is first renamed out of the run's name, at once and whole, so
    the name is free even if a file cannot be removed (then a RunError names what is left).
    Returns what was removed (files, bytes)."""
    from ..results.artifacts import human_size

    with run.exclusive(doing):
        files, size = _tree_size(run.path)
        trash = run.path.with_name(f".deleting-{run.name}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(run.path, trash)
        except OSError as exc:
            raise RunError(f"cannot delete run {run.name}: renaming {run.path} failed: {exc.strerror}") from None
    for attempt in range(10):  # a process of the run's that is still ending may write a last file meanwhile
        try:
            shutil.rmtree(trash)
            break
        except FileNotFoundError:
            break
        except OSError as exc:
            if attempt == 9:
                raise RunError(f"run {run.name} is deleted, but {trash} could not be removed entirely "
                               f"({exc.strerror}: {exc.filename}); remove it by hand: rm -rf {trash}") from None
            time.sleep(0.3)
    return f"{files} file(s), {human_size(size)}"


#: the statuses of a run some controller is playing (preparing: the client's deployment)
ACTIVE = (RunStatus.PREPARING.value, RunStatus.RUNNING.value)


def is_playing(record: Mapping[str, object]) -> bool:
    """Whether a controller is playing the run right now (it is active and its controller lives)."""
    return record.get("status") in ACTIVE and is_alive(record.get("controller"))


def controller_died(record: Mapping[str, object]) -> bool:
    """Whether the run was left active by a controller that died (kill -9): ``collect`` takes it over."""
    return record.get("status") in ACTIVE and not is_alive(record.get("controller"))


def wait_for_controller(record: Mapping[str, object], seconds: float) -> None:
    """Until the controller a record names has ended (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    while is_alive(record.get("controller")) and time.monotonic() < deadline:
        time.sleep(0.2)


def _unless_cancelled(status: RunStatus) -> Callable[[Mapping[str, object]], dict[str, object]]:
    """A record change to ``status``, except for a run someone cancelled meanwhile."""

    def change(record: Mapping[str, object]) -> dict[str, object]:
        cancelled = record.get("status") == RunStatus.CANCELLED.value or "cancel_requested" in record
        return {"status": (RunStatus.CANCELLED if cancelled else status).value}

    return change


def settle(run: RunDir, status: RunStatus, **fields: object) -> Stored:
    """Record that a step ended in ``status`` (a cancelled run stays cancelled)."""
    return run.update(_unless_cancelled(status), **fields)


def mark_preparing(run: RunDir) -> None:
    run.update(status=RunStatus.PREPARING.value, prepare_started=time.time(), controller=this_controller())


def deploy(run: RunDir, inventory: Inventory, event_handler: EventHandler | None = None,
           secrets: Secrets | None = None) -> int:
    """Run the deployment play; the run is then ``ready`` (each node's outcome is in its status)."""
    rc = play_groups(_groups(run, inventory), DEPLOY, PlayOptions(event_handler, secrets, _cancel_requested(run)))
    settle(run, RunStatus.READY, prepare_finished=time.time(), deploy_rc=rc)
    return rc


def _cancel_requested(run: RunDir, noted: StopSignal | None = None) -> Callable[[], bool]:
    """Whether a play of this run should stop: a cancel was asked for, a stop signal arrived, or
    the run folder is gone."""

    def should_stop() -> bool:
        if noted is not None and noted.arrived:
            return True
        try:
            return "cancel_requested" in run.record()
        except RunError:
            return True

    return should_stop


def mark_running(run: RunDir, expected: RunStatus | None = None) -> None:
    """Record that the execution starts; with ``expected``, only from that status (else RunError)."""

    def change(record: Mapping[str, object]) -> dict[str, object]:
        status = record.get("status")
        if expected is not None and status != expected.value:
            raise RunError(f"experiment {run.name} is {status}, not {expected.value}; "
                           "call prepare_experiment and wait for READY")
        return {"status": RunStatus.RUNNING.value, "started": time.time(), "controller": this_controller()}

    run.update(change)


def execute(run: RunDir, inventory: Inventory, event_handler: EventHandler | None = None,
            secrets: Secrets | None = None, playbook: str = EXECUTE,
            only: Mapping[str, Sequence[str]] | None = None) -> int:
    """Run the execution play (or ``site.yml``: deployment and execution in one go) with the run's
    flag store served (one per run, whoever drives its hosts); the run is then ``finished``, or stays
    ``cancelled``. ``only``: host -> the executors to start there (the client's prepared ones);
    other hosts are left alone."""
    groups = _groups(run, inventory)
    executors_of = {} if only is None else {"unicorn_executors": {host: list(e) for host, e in only.items()}}
    try:
        with serve_flags(run.path), noting_stop_signals() as noted:
            rc = play_groups(groups, playbook, PlayOptions(event_handler, secrets, _cancel_requested(run, noted),
                                                           extra_vars=executors_of,
                                                           limit=None if only is None else sorted(only)))
        if noted.arrived:
            _stop_after_signal(run, inventory, noted, event_handler)
        _wait_for_cancel(run)
    finally:
        close_groups(groups)  # the run's ssh connections end with it, not ControlPersist later
    settle(run, RunStatus.FINISHED, finished=time.time(), ansible_rc=rc)
    return rc


def _wait_for_cancel(run: RunDir, seconds: float = 600.0) -> None:
    """A cancel from another terminal ended the play: until that cancel has fetched what finished
    (while its process lives), so what this controller shows is what the cancel found."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            record = run.record()
        except RunError:
            return
        if "cancel_requested" not in record or "cancelled" in record or not is_alive(record.get("canceller")):
            return
        time.sleep(0.2)


def _stop_after_signal(run: RunDir, inventory: Inventory, noted: StopSignal,
                       event_handler: EventHandler | None) -> None:
    """A stop signal ended the play (ansible-playbook and its SSH sessions are gone): the hosts
    are left as a cancel leaves them; the error says how to fetch what finished."""
    _cancel(run, inventory, event_handler)
    raise RunError(f"run {run.name} stopped by {noted.name}: every node's deployment and pipeline was cancelled; "
                   f"fetch what finished with: unicorn-ansible collect {run.name}")


def record_failure(run: RunDir, error: BaseException) -> None:
    """A step raised instead of ending: the run is over, with the error recorded."""
    settle(run, RunStatus.FINISHED, finished=time.time(), error=f"{type(error).__name__}: {error}")


def run_experiment(
    experiment: Experiment,
    inventory: Inventory | None = None,
    name: str | None = None,
    replace: bool = False,
    options: CompileOptions | None = None,
    event_handler: EventHandler | None = None,
    secrets: Secrets | None = None,
    payload_limit: int | None = None,
    parameters: Mapping[str, object] | None = None,
) -> RunResults:
    """Compile and run an experiment; block until every node is done; return the results (those
    whose payload is over ``payload_limit`` as their previews: see results/load.py).
    ``parameters``: the experiment function's arguments, kept in the run's record."""
    inventory = inventory or load_inventory(None)
    run = prepare(experiment, inventory, name or new_run_name("experiment"), options, replace)
    if parameters is not None:
        run.update(parameters=parameters)
    mark_running(run)
    try:
        execute(run, inventory, event_handler, secrets, playbook=SITE)
    except Exception as exc:  # recorded, so `status` says why the run ended (not that its controller died)
        record_failure(run, exc)
        raise
    return load_results(run.path, payload_limit=payload_limit)


if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack


class EngineOptions(TypedDict, total=False):
    """How a run goes (CompileOptions' fields but ``forks``): keyword arguments of :func:`run`,
    ``Client`` and ``RemoteClient``, documented here once; a key left out keeps its default."""

    #: seconds one wait for a host's pipeline blocks before the play asks again (default 20)
    poll_seconds: int
    #: seconds a node's deployment and pipeline may take together (default 86400)
    run_timeout_seconds: int
    #: seconds one task may run (default: no limit)
    task_timeout: float | None
    #: seconds one requirement may run (default: no limit)
    requirement_timeout: float | None
    #: bytes of each task's log kept on the host (default 10 MiB)
    log_cap: int
    #: bytes of artifacts brought home per run, over every node (default 10 GiB; the rest stays on the hosts)
    artifact_cap: int
    #: run the requirements even on a host that has that environment already (default False)
    redeploy: bool
    #: Ansible's strategy plugin, e.g. "mitogen_linear" (default: Ansible's linear)
    strategy: str | None


class RunOptions(EngineOptions, total=False):
    """Every option of a run (CompileOptions' fields), as :func:`run` takes them."""

    #: hosts Ansible works on at once (default: all, up to 50); every node's pipeline runs at once whatever it says
    forks: int | None


def run(
    experiment: Experiment,
    inventory: Sequence[str] | None = None,
    name: str | None = None,
    replace: bool = False,
    trust_results: bool = False,
    **options: Unpack[RunOptions],
) -> RunResults:
    """Run ``experiment`` on the hosts of ``inventory`` (default: the local machine) and return its results.

    ``trust_results``: load every result fully, also those the restricted loader refuses (only
    for hosts you trust). ``options``: see :class:`RunOptions` (``run(experiment, forks=10,
    task_timeout=60)``).
    """
    results = run_experiment(experiment, load_inventory(inventory), name, replace, CompileOptions(**options))
    return load_results(results.run_dir, trust=True) if trust_results else results


def run_inventory(run: RunDir) -> Inventory:
    """The inventory a run was compiled for (its sources are re-read: they may have changed)."""
    return load_inventory(run.record().get("inventory") or None)


def cancel(run: RunDir, inventory: Inventory | None = None,
           event_handler: EventHandler | None = None) -> RunResults:
    """Stop every node's executor and the processes its tasks started; fetch what finished.
    The run is ``cancelled`` from the moment the cancel is asked for. A collect, cancel or delete
    of the run under way is waited for by none: this is refused (RunError)."""
    with run.exclusive("cancelled"):
        return _cancel(run, inventory, event_handler)


def _cancel(run: RunDir, inventory: Inventory | None = None,
            event_handler: EventHandler | None = None) -> RunResults:
    inventory = inventory or run_inventory(run)
    run.update(cancel_requested=time.time(), canceller=this_controller())
    groups = _groups(run, inventory)
    try:
        rc = play_groups(groups, CANCEL, PlayOptions(event_handler, tunnel=False))
    except BaseException:
        with contextlib.suppress(RunError):  # the controller playing the run waits for this cancel no more
            run.update(canceller=None)
        raise
    finally:
        # the run's SSH masters are the playing controller's to close when it ends: closed from
        # here (another terminal) they would cut its last calls and make its hosts unreachable
        if not is_playing(run.record()):
            close_groups(groups)
    run.update(status=RunStatus.CANCELLED.value, cancelled=time.time(), cancel_rc=rc)
    return load_results(run.path)


def cancel_nodes(run: RunDir, nodes: Sequence[str], inventory: Inventory | None = None,
                 event_handler: EventHandler | None = None) -> RunResults:
    """Stop the executors of ``nodes`` only (executor ids: a node's name, NODE#N for its N-th
    pipeline); the run and its other executors, those on the same hosts included, go on."""
    with run.exclusive("cancelled"):
        return _cancel_nodes(run, nodes, inventory, event_handler)


def _cancel_nodes(run: RunDir, nodes: Sequence[str], inventory: Inventory | None,
                  event_handler: EventHandler | None) -> RunResults:
    hosts = executors(run.record())
    options = PlayOptions(event_handler, extra_vars={"unicorn_cancel_only": list(nodes)}, tunnel=False,
                          limit=sorted({hosts.get(node, node) for node in nodes}))
    rc = play_groups(_groups(run, inventory or run_inventory(run)), CANCEL, options)
    run.update(cancelled_nodes=sorted(set(run.record().get("cancelled_nodes", [])) | set(nodes)),
               cancel_nodes_rc=rc)
    return load_results(run.path)


def collect(run: RunDir, inventory: Inventory | None = None,
            event_handler: EventHandler | None = None, artifact_cap: int | None = None) -> RunResults:
    """Fetch a run's results again, waiting for pipelines still running (none is started twice).
    ``artifact_cap``: the run's new cap on artifacts (bytes), for files the old one left on the hosts.
    Exclusive per run: a collect, cancel or delete of it under way makes this a RunError naming its pid."""
    executors(run.record())  # a record naming a folder outside the run: refused before anything is played
    with run.exclusive("collected"):
        return _collect(run, inventory, event_handler, artifact_cap)


def _collect(run: RunDir, inventory: Inventory | None, event_handler: EventHandler | None,
             artifact_cap: int | None) -> RunResults:
    inventory = inventory or run_inventory(run)
    if artifact_cap is not None:
        run.update(lambda record: {"options": dict(record.get("options") or {}, artifact_cap=artifact_cap)})
    run.update(controller=this_controller())
    groups = _groups(run, inventory)
    try:
        rc = play_groups(groups, EXECUTE, PlayOptions(event_handler, tunnel=False))
    finally:
        close_groups(groups)
    settle(run, RunStatus.FINISHED, collected=time.time(), ansible_rc=rc)
    return load_results(run.path)
