"""The ``unicorn-ansible`` command.

Exit codes: 0 every node's pipeline succeeded (or the command did what it was
asked), 1 some node or task failed, or the run failed (RunError, UntrustedDataError,
TestbedError), 2 a usage error (bad arguments, experiment file, inventory or run name).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import click

from ..ansible import inventory_list
from ..campaign.plan import ORDERS
from ..campaign.records import MAX_REPEAT
from ..compiler.compile import check_run_name, compile_experiment, inventory_args, load_templates
from ..compiler.settings import DEFAULT_RUN_TIMEOUT_SECONDS, CompileOptions
from ..engine.controller import CONTROLLER_GRACE
from ..engine.lifecycle import (
    controller_died,
    find_run,
    load_experiment_file,
    new_run_name,
    run_experiment,
    run_path,
    taken_name_error,
)
from ..engine.rundir import RECORD, RunDir, executors, read_json
from ..errors import ExperimentError, InventoryError, UnicornError, UsageError
from ..inventory import Inventory, load_inventory
from ..node.protocol import TaskKind
from ..node.shown import printable, printable_line
from ..results.artifacts import parse_size
from ..results.load import VIEW_PAYLOAD_LIMIT, RunResults, load_results
from ..results.outbox import node_file
from .progress import known_total, tasks_text
from .tables import console, print_table

if TYPE_CHECKING:  # pragma: no cover
    from ..campaign.parameters import ExperimentArguments
    from ..engine.lifecycle import Secrets
    from ..model.experiment import Experiment
    from ..node.wire import JSONObject
    from ..results.model import NodeResult

#: a click command's function, as its options decorate it
_Command = TypeVar("_Command", bound=Callable[..., object])
#: what a piece of work returns
_T = TypeVar("_T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
USAGE_ERRORS = (UsageError, ExperimentError, InventoryError)


class _Group(click.Group):
    """Turns our errors into one line on stderr and the documented exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UnicornError as exc:
            click.echo(f"error: {printable(str(exc))}", err=True)  # it may quote a host's text
            ctx.exit(EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_FAILED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="unicorn-ansible")
def cli() -> None:
    """Run netunicorn-style experiments on the hosts of an Ansible inventory.

    \b
    Exit codes: 0 ok, 1 some node or task failed or the run failed, 2 usage error.
    Runs are kept in ~/.unicorn-ansible/runs (set UNICORN_ANSIBLE_HOME to move it).
    """


def _start_reading(ctx: click.Context, param: click.Parameter, sources: tuple[str, ...]) -> tuple[str, ...]:
    """The commands that take -i read the inventory first thing: Ansible starts reading it in a
    process of its own as soon as click has parsed it (eager: before the other arguments), while
    this one goes on (ansible/inventory_list.py)."""
    inventory_list.prefetch(list(sources))
    return sources


_inventory_option = click.option(
    "-i", "--inventory", "inventories", multiple=True, metavar="INVENTORY", is_eager=True, callback=_start_reading,
    help="Ansible inventory (file, folder or script; repeatable). Default: the local machine.",
)


_parameter_option = click.option(
    "-p", "--parameter", "parameters", multiple=True, metavar="NAME=VALUE",
    help="A parameter of the experiment function (a keyword argument of experiment(nodes, ...), typed by "
         "its default; repeatable), e.g. -p rate=20.",
)


def _arguments(experiment_file: str, parameters: Sequence[str]) -> ExperimentArguments:
    """The experiment function's arguments from ``-p NAME=VALUE`` (campaign/parameters.py)."""
    from ..campaign.parameters import ExperimentArguments, parse_assignments

    return ExperimentArguments(parse_assignments(parameters), experiment_file)


def _engine_options(function: _Command) -> _Command:
    for option in reversed([
        click.option("--forks", type=click.IntRange(1),
                     help="Hosts Ansible connects to and works on at once (default: all, up to 50); "
                          "every node's pipeline runs at once whatever it says."),
        click.option("--task-timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds a task may run."),
        click.option("--requirement-timeout", type=click.FloatRange(min=0, min_open=True),
                     help="Seconds one requirement may run."),
        click.option("--run-timeout", type=click.IntRange(1), default=DEFAULT_RUN_TIMEOUT_SECONDS, show_default=True,
                     help="Seconds a node's deployment and pipeline may take together."),
        click.option("--redeploy", is_flag=True, help="Run requirements even if the host has that environment."),
        click.option("--strategy", help="Ansible strategy plugin, e.g. mitogen_linear."),
        click.option("--artifact-cap", default="10G", show_default=True, metavar="SIZE",
                     help="Bytes of artifacts brought home per run (e.g. 500M, 2G); the rest stays on the hosts."),
        click.option("-K", "--ask-become-pass", is_flag=True,
                     help="Ask for the become (sudo) password; it is never written anywhere."),
        click.option("-k", "--ask-pass", is_flag=True, help="Ask for the SSH password; it is never written anywhere."),
    ]):
        function = option(function)
    return function


def _secrets(engine: dict[str, object]) -> Secrets:
    from ..engine.lifecycle import Secrets

    become = engine.pop("ask_become_pass", False)
    connection = engine.pop("ask_pass", False)
    return Secrets(
        become_password=click.prompt("BECOME password", hide_input=True, err=True) if become else None,
        connection_password=click.prompt("SSH password", hide_input=True, err=True) if connection else None,
    )


def _options(forks: int | None, task_timeout: float | None, requirement_timeout: float | None,
             run_timeout: int, redeploy: bool, strategy: str | None, artifact_cap: str) -> CompileOptions:
    try:
        cap = parse_size(artifact_cap)
    except ValueError as exc:
        raise UsageError(f"--artifact-cap: {exc}") from None
    return CompileOptions(forks=forks, task_timeout=task_timeout, requirement_timeout=requirement_timeout,
                          run_timeout_seconds=run_timeout, redeploy=redeploy, strategy=strategy, artifact_cap=cap)


def _with_progress(run_dir: Path, work: Callable[[Callable[[Mapping[str, object]], None]], _T]) -> _T:
    """Run ``work(event_handler)`` while showing the run's progress."""
    from .progress import Progress

    with Progress(run_dir, list(executors(RunDir(run_dir).record())), sys.stderr) as progress:
        return work(progress.handle)


def _inventory_reader(sources: Sequence[str]) -> Callable[[], Inventory]:
    """The inventory, read when first asked for (Ansible reads it in a process of its own, started
    first thing: ui/main.py); meanwhile the experiment file runs."""
    return functools.cache(lambda: load_inventory(sources))


def _load_for_the_run() -> None:
    """Load now what the run needs later (ansible-runner, the playbooks' templates, the progress
    display's and the summary's parts of rich): done while Ansible reads the inventory in its own
    process, where this one would otherwise wait, not after it."""
    import ansible_runner  # noqa: F401
    import rich.live  # noqa: F401
    import rich.table  # noqa: F401

    load_templates()


def _summary(results: RunResults) -> None:
    rows = []
    for node in results:
        ok = sum(1 for timing in node.timings if timing.get("kind") == TaskKind.OK)
        rows.append((node.executor_id, node.status, ok, len(node.timings) - ok, len(node.not_run),
                     _first_line(node.error)))
    out = console()
    print_table(("node", "status", "tasks ok", "tasks failed", "not run", "error"), rows, f"run {results.name}", out)
    for node in results:
        if node.notice:
            out.print(printable(f"{node.executor_id}  notice: {node.notice}"), markup=False, highlight=False,
                      soft_wrap=True)
        if node.stopped_processes:
            out.print(printable(f"{node.executor_id}  {_stopped_text(node.stopped_processes)}"), markup=False,
                      highlight=False, soft_wrap=True)
        for task, values in node.tasks.items():
            for value in values:
                out.print(printable(f"{node.executor_id}  {task}: {_short(value)}"), markup=False, highlight=False)
        for line in _artifact_lines(results, node):
            out.print(printable(f"{node.executor_id}  {line}"), markup=False, highlight=False, soft_wrap=True)


#: files left on a host named one by one in the summary; more are counted
LEFT_SHOWN = 10


def _artifact_lines(results: RunResults, node: NodeResult) -> list[str]:
    """What came home (how many, where) and what stayed on the host (each file: where, and why)."""
    from ..results.load import _run_argument
    from .artifacts import shown

    home = [a for a in node.artifacts if a.file]
    left = [a for a in node.artifacts if not a.file]
    lines = []
    if home:
        folder = RunDir(results.run_dir).node_dir(node.executor_id) / "artifacts"
        lines.append(f"artifacts: {len(home)} file(s) came home into {shown(str(folder))}")
    for a in left[:LEFT_SHOWN]:
        lines.append(f"artifact {shown(a.path)} of task {shown(a.task or '(pipeline)')} left on the host "
                     f"at {shown(a.source or '?')}: {shown(a.left or '')}")
    if len(left) > LEFT_SHOWN:
        lines.append(f"... {len(left) - LEFT_SHOWN} more artifacts left on the host: "
                     f"unicorn-ansible artifacts {_run_argument(results.run_dir)} --node {node.executor_id}")
    return lines


def _stopped_text(processes: list[JSONObject], shown: int = 5) -> str:
    """How many processes the pipeline's end (or a cancel, a time limit) stopped, and the first few."""
    commands = [printable_line(str(p.get("command"))[:80]) for p in processes[:shown]]
    more = f" and {len(processes) - shown} more" if len(processes) > shown else ""
    return f"stopped {len(processes)} process(es) its tasks left running: {', '.join(commands)}{more}"


def _count(experiment: Experiment) -> str:
    """How many nodes an experiment runs on, and how many pipelines when a node runs several."""
    nodes = len({d.node.name for d in experiment})
    pipelines = f", {len(experiment)} pipelines" if len(experiment) != nodes else ""
    return f"{nodes} node(s){pipelines}"


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _short(value: object, limit: int = 300) -> str:
    from ..results.convert import view_repr

    text = view_repr(value)  # never the whole repr of a 100 MB result
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resolve_run(name_or_dir: str) -> Path:
    """A run by name in the home folder; a run folder elsewhere by a path, which has a ``/``."""
    if "/" in name_or_dir:
        given = RunDir(Path(name_or_dir))
        if not given.exists():
            raise UsageError(f"{name_or_dir} is not a run folder (it has no run record)")
        return given.path
    return find_run(check_run_name(name_or_dir)).path


@cli.command()
@click.argument("experiment_file", type=click.Path(dir_okay=False))
@_inventory_option
@click.option("--name", help="Run name (default: <file>-<date>-<time>).")
@click.option("--replace", is_flag=True, help="Overwrite an existing run of that name.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
@_parameter_option
@_engine_options
def run(experiment_file: str, inventories: Sequence[str], name: str | None, replace: bool, as_json: bool,
        parameters: Sequence[str], **engine: Any) -> None:
    """Run an experiment file on the inventory's hosts and print every node's outcome.

    The file defines `experiment`: an Experiment, or a function that takes the
    inventory's node pool and returns one.

    \b
    Example:
      unicorn-ansible run examples/hello.py
      unicorn-ansible run lab.py -i inventory.ini --name ping-1
      unicorn-ansible run lab.py -p rate=20 -p size=10M
    """
    arguments = _arguments(experiment_file, parameters)
    if name is not None:
        check_run_name(name)
        if not replace and run_path(name).path.exists():
            raise taken_name_error(run_path(name))
        if replace and run_path(name).path.is_dir():
            with run_path(name).exclusive("replaced"):  # a collect, cancel or delete of it is refused here, at once
                pass
    secrets = _secrets(engine)
    _load_for_the_run()
    read = _inventory_reader(inventories)
    experiment = load_experiment_file(experiment_file, lambda: read().nodes(), arguments)
    inventory = read()
    name = name or new_run_name(Path(experiment_file).stem)
    click.echo(f"run {name}: {_count(experiment)}", err=True)
    from .progress import Progress

    with Progress(run_path(name).path, [d.executor_id or d.node.name for d in experiment], sys.stderr) as progress:
        results = run_experiment(experiment, inventory, name, replace, _options(**engine), progress.handle, secrets,
                                 payload_limit=VIEW_PAYLOAD_LIMIT, parameters=arguments.parameters)
    if as_json:
        click.echo(json.dumps(results.to_dict(), indent=2))
    else:
        _summary(results)
        click.echo(f"results: {self_command()} results {name} --json   (run folder: {results.run_dir})", err=True)
    sys.exit(EXIT_OK if results.success else EXIT_FAILED)


#: the command as started, made absolute before a step changes the working folder (a relative
#: `.venv/bin/unicorn-ansible` is not found from the run's folder)
_STARTED_AS = Path(sys.argv[0]).absolute()


def self_command(argv0: str | None = None) -> str:
    """How the user can run this same unicorn-ansible again: its bare name when that is what PATH
    finds, else the full path of the running executable (after `pip install` into a venv that is not
    activated, `unicorn-ansible` alone is not found, so a hint naming it would not run)."""
    import os
    import shutil

    running = Path(argv0) if argv0 is not None else _STARTED_AS
    if running.name != "unicorn-ansible":  # run as `python -m` (the prefetch restarts so): the venv's own
        running = Path(sys.executable).with_name("unicorn-ansible")
    if not running.exists():
        return "unicorn-ansible"
    from ..inventory import user_path

    on_path = shutil.which("unicorn-ansible", path=user_path())  # not the PATH the run put its scripts on
    if on_path is not None and os.path.realpath(on_path) == os.path.realpath(running):
        return "unicorn-ansible"
    return str(running.resolve())


@cli.command("compile")
@click.argument("experiment_file", type=click.Path(dir_okay=False))
@_inventory_option
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder to write the run into.")
@click.option("--name", help="Run name used on the hosts (default: the output folder's name).")
@_parameter_option
@_engine_options
def compile_command(experiment_file: str, inventories: Sequence[str], output: str, name: str | None,
                    parameters: Sequence[str], **engine: Any) -> None:
    """Write an experiment's run folder (playbooks, pipelines, inventory) without running anything.

    \b
    Example:
      unicorn-ansible compile examples/hello.py -o /tmp/hello-run
      cd /tmp/hello-run/project && ansible-playbook -i ../inventory/hosts.yml site.yml
    """
    target = Path(output)
    if target.exists() and any(target.iterdir()) and not RunDir(target).exists():
        raise UsageError(f"{output} exists and is not empty; pass a new folder to -o")
    name = check_run_name(name or target.resolve().name)
    engine.pop("ask_become_pass", None)
    engine.pop("ask_pass", None)
    arguments = _arguments(experiment_file, parameters)
    read = _inventory_reader(inventories)
    experiment = load_experiment_file(experiment_file, lambda: read().nodes(), arguments)
    inventory = read()
    run_dir = compile_experiment(experiment, inventory, target, name, _options(**engine))
    RunDir(run_dir).update(parameters=arguments.parameters)
    args = " ".join(inventory_args(run_dir, inventory.sources))
    click.echo(f"compiled {_count(experiment)} into {run_dir}")
    click.echo(f"run it by hand:  cd {run_dir / 'project'} && ansible-playbook {args} site.yml")


@cli.command()
@click.argument("run_name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--trust", is_flag=True,
              help="Load every result fully, also those the restricted loader refuses (only for hosts you trust).")
def results(run_name: str, as_json: bool, trust: bool) -> None:
    """Show every node's results of a run (a run name, or a run folder).

    \b
    Example:
      unicorn-ansible results hello-20261124-120000 --json
    """
    loaded = load_results(_resolve_run(run_name), payload_limit=VIEW_PAYLOAD_LIMIT, trust=trust)
    if trust:
        click.echo("results loaded with --trust: every result fully, as the hosts sent it "
                   "(a crafted result could run code here)", err=True)
    if as_json:
        click.echo(json.dumps(loaded.to_dict(), indent=2))
    else:
        _summary(loaded)
    sys.exit(EXIT_OK if loaded.success else EXIT_FAILED)


@cli.command()
@_inventory_option
@click.option("--facts", is_flag=True, help="Connect to the hosts to learn their architecture (system, machine).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def nodes(inventories: Sequence[str], facts: bool, as_json: bool) -> None:
    """List the inventory's hosts as nodes: name, architecture, groups, properties.

    The architecture comes from the host variable unicorn_architecture, or with
    --facts from the host's own system and machine (Linux x86_64 = linux/amd64).

    \b
    Example:
      unicorn-ansible nodes -i inventory.ini --facts --json
    """
    from ..inventory import gather_architectures

    inventory = load_inventory(inventories)
    architectures = gather_architectures(inventory) if facts else None
    pool = inventory.nodes(architectures)
    for node in pool.flatten():
        if architectures is not None and node.name not in architectures and node.architecture.value == "unknown":
            click.echo(f"warning: {printable_line(node.name)} gave no facts (unreachable or failed): its architecture is unknown; "
                       f"check it with: ansible {node.name} -i INVENTORY -m ping", err=True)
    if as_json:
        click.echo(json.dumps([node.to_dict() for node in pool.flatten()], indent=2, default=str))
        return
    rows = [(node.name, node.known_architecture.value, ", ".join(node["groups"] or []),
             ", ".join(f"{k}={v}" for k, v in node.properties.items() if k != "groups"))
            for node in pool.flatten()]
    print_table(("node", "architecture", "groups", "properties"), rows)


class _NodeLine(TypedDict):
    """One node's line of ``status``."""

    node: str
    phase: str
    done: int | None
    total: int | None
    error: str | None


@cli.command()
@click.argument("run_name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(run_name: str, as_json: bool) -> None:
    """Show a run's status and every node's phase and progress.

    \b
    Example:
      unicorn-ansible status ping-1
    """
    run = RunDir(_resolve_run(run_name))
    record = run.record()
    nodes_status: list[_NodeLine] = []
    for executor in executors(record):
        node_status = run.node_status(executor)
        progress = node_status.progress
        nodes_status.append({
            "node": executor,
            "phase": node_status.phase or "pending",
            "done": progress.done if progress else None,
            "total": known_total(progress) or None,
            "error": node_status.error,
        })
    died = controller_died(record)
    if as_json:
        click.echo(json.dumps({"name": record["name"], "status": record.get("status"), "controller_died": died,
                               "error": record.get("error"), "nodes": nodes_status}, indent=2))
        return
    rows = [(entry["node"], entry["phase"], tasks_text(int(entry["done"] or 0), entry["total"] or 0),
             _first_line(entry["error"])) for entry in nodes_status]
    print_table(("node", "phase", "tasks done", "error"), rows, f"run {record['name']}: {record.get('status')}")
    if record.get("error"):
        click.echo(f"the run ended with an error: {printable_line(_first_line(str(record['error'])))}", err=True)
    if died:
        click.echo(f"its controller (pid {(record.get('controller') or {}).get('pid', '?')}) died; the pipelines may "
                   f"still run on the hosts: unicorn-ansible collect {record['name']} fetches their results", err=True)


@cli.command()
@click.argument("run_name")
@click.argument("flag", required=False)
@click.option("--text", "text_value", help="Set the flag's text.")
@click.option("--int", "int_value", type=int, help="Set the flag's integer.")
@click.option("--increment", type=int, help="Add this to the flag's integer, atomically (negative: subtract).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def flags(run_name: str, flag: str | None, text_value: str | None, int_value: int | None,
          increment: int | None, as_json: bool) -> None:
    """Show or set a run's flags, the values its tasks share across nodes.

    With no FLAG, every flag; with FLAG, that one; with --text and/or --int, set it
    (a field not given is cleared: text to none, integer to 0, as a flag is set whole);
    with --increment, add to its integer. While the run executes this talks to its
    live flag store, so tasks waiting for the value go on at once; before or after,
    to the run folder (values set before the execution starts are there when it does).

    \b
    Examples:
      unicorn-ansible flags iperf-test
      unicorn-ansible flags iperf-test server_ready --int 1
      unicorn-ansible flags iperf-test clients --increment 1 --json
    """
    from ..engine.flag_server import flag_request

    run_dir = _resolve_run(run_name)
    changing = text_value is not None or int_value is not None
    if (changing or increment is not None) and not flag:
        raise click.UsageError("name the FLAG to set, e.g. unicorn-ansible flags RUN ready --int 1")
    if changing and increment is not None:
        raise click.UsageError("--increment cannot be combined with --text/--int")
    if not flag:
        values = flag_request(run_dir, {"op": "list"})["flags"]
    elif increment is not None:
        values = {flag: flag_request(run_dir, {"op": "add", "name": flag, "by": increment})["value"]}
    elif changing:
        value = {"text_value": text_value, "int_value": int_value or 0}
        values = {flag: flag_request(run_dir, {"op": "set", "name": flag, "value": value})["value"]}
    else:
        values = {flag: flag_request(run_dir, {"op": "get", "name": flag})["value"]}
    if as_json:
        click.echo(json.dumps(values, indent=2, sort_keys=True))
        return
    if flag and values[flag] is None:
        click.echo(f"flag {flag} is not set", err=True)
        sys.exit(EXIT_FAILED)
    rows = [(name, value["text_value"], value["int_value"]) for name, value in sorted(values.items())]
    print_table(("flag", "text_value", "int_value"), rows, f"flags of {run_dir.name}")


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_runs(as_json: bool) -> None:
    """List the runs in the home folder, newest first.

    \b
    Example:
      unicorn-ansible list --json
    """
    from ..home import runs_dir

    folder = runs_dir()
    records = [read_json(RunDir(path).record_file) for path in folder.iterdir()] if folder.exists() else []
    entries = sorted((r for r in records if r), key=lambda r: r.get("created", 0), reverse=True)
    rows = [{"name": r["name"], "status": r.get("status"), "nodes": len(r.get("hosts", [])),
             "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.get("created", 0)))} for r in entries]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(("name", "status", "nodes", "created"),
                [(row["name"], row["status"], row["nodes"], row["created"]) for row in rows])


@cli.command()
@click.argument("run_name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Delete a run that is still running: cancel it first.")
def delete(run_name: str, yes: bool, force: bool) -> None:
    """Delete a run's folder from the controller (hosts keep their work folders).

    A run still running is refused unless --force, which cancels it first.

    \b
    Example:
      unicorn-ansible delete ping-1 --yes
    """
    from ..engine.lifecycle import cancel as cancel_run
    from ..engine.lifecycle import delete_run, is_playing, wait_for_controller
    from ..errors import RunError

    run = RunDir(_deletable_run(run_name))
    with run.exclusive("deleted"):  # a collect or cancel of it meanwhile is refused, and this during theirs
        try:
            record: dict[str, Any] | None = run.record()
        except RunError:  # truncated, not JSON, missing: the folder is deleted all the same
            record = None
        if record is not None and is_playing(record):
            if not force:
                raise UsageError(f"run {run_name} is running; cancel it first (unicorn-ansible cancel {run_name}), "
                                 "or pass --force to cancel and delete it")
            _with_progress(run.path, lambda handler: cancel_run(run, event_handler=handler))
            wait_for_controller(run.record(), CONTROLLER_GRACE)
        if not yes and not click.confirm(f"delete {run.path}?", default=False):
            sys.exit(EXIT_FAILED)
        removed = delete_run(run)
    unreadable = "" if record is not None else f"; its {RECORD} was unreadable"
    click.echo(f"deleted {run.path} ({removed}{unreadable})")


def _deletable_run(name_or_dir: str) -> Path:
    """The folder ``delete`` removes: a run's, even one whose run.json is unreadable or gone (a
    delete cut short); by a path (it has a ``/``), only a folder that has a run.json."""
    if "/" in name_or_dir:
        given = RunDir(Path(name_or_dir))
        if not given.record_file.is_file():
            raise UsageError(f"{name_or_dir} is not a run folder (it has no run record)")
        return given.path
    run = run_path(check_run_name(name_or_dir))
    if not run.path.is_dir():
        raise UsageError(f"no run named {name_or_dir}; see `unicorn-ansible list`")
    return run.path


@cli.command()
@click.argument("run_name")
def cancel(run_name: str) -> None:
    """Stop a run's executors on every node, with every process their tasks started.

    The results that finished are fetched and kept.

    \b
    Example:
      unicorn-ansible cancel ping-1
    """
    from ..engine.lifecycle import cancel as cancel_run

    run_dir = _resolve_run(run_name)
    with RunDir(run_dir).exclusive("cancelled"):  # refused before any progress is shown (one line)
        results = _with_progress(run_dir, lambda handler: cancel_run(RunDir(run_dir), event_handler=handler))
    _summary(results)


@cli.command()
@click.argument("run_name")
@click.option("--artifact-cap", metavar="SIZE",
              help="A new cap on the run's artifacts (e.g. 50G): files the old one left on the hosts come home.")
def collect(run_name: str, artifact_cap: str | None) -> None:
    """Fetch a run's results from its hosts again (after the controller crashed, say).

    Pipelines still running are waited for; none is started twice. Artifacts already home
    unchanged are not fetched again.

    \b
    Example:
      unicorn-ansible collect ping-1
      unicorn-ansible collect ping-1 --artifact-cap 50G
    """
    from ..engine.lifecycle import collect as collect_run

    cap = None
    if artifact_cap is not None:
        try:
            cap = parse_size(artifact_cap)
        except ValueError as exc:
            raise UsageError(f"--artifact-cap: {exc}") from None
    run_dir = _resolve_run(run_name)
    with RunDir(run_dir).exclusive("collected"):  # refused before any progress is shown (one line)
        results = _with_progress(run_dir, lambda handler: collect_run(RunDir(run_dir), event_handler=handler,
                                                                      artifact_cap=cap))
    _summary(results)
    sys.exit(EXIT_OK if results.success else EXIT_FAILED)


def _requirement_logs(run: RunDir, node: str) -> list[tuple[str, Path | None]]:
    """(title, log) of each requirement the deploy report (from the host) lists; a log only inside the node's folder."""
    report = run.deploy_report(node)
    folder = run.node_dir(node)
    sections = []
    for command in report.commands if report is not None else ():
        title = f"requirement: {command.command[:200]} (exit {command.rc!s:.20})"
        sections.append((title, node_file(folder, command.log)))
    return sections


@cli.command()
@click.argument("run_name")
@click.option("--node", "node_name", help="Only this node (all its pipelines; NODE#N: only its N-th).")
@click.option("--task", "task_name", help="Only this task (its name).")
@click.option("--executor", is_flag=True, help="The executor's own log instead of the tasks'.")
def logs(run_name: str, node_name: str | None, task_name: str | None, executor: bool) -> None:
    """Show the captured stdout and stderr of a run's tasks (and requirements), node by node.

    \b
    Example:
      unicorn-ansible logs ping-1 --node h1 --task ping-10.77.0.12
    """
    run = RunDir(_resolve_run(run_name))
    loaded = load_results(run.path, with_values=False)  # unpacks what was fetched
    shown = 0
    for node in loaded:
        if node_name and node_name not in (node.executor_id, node.node):
            continue
        folder = run.node_dir(node.executor_id)
        sections: list[tuple[str, Path | None]] = []
        if executor:
            sections.append(("executor", run.node_logs_dir(node.executor_id) / "executor.log"))
        else:
            if not task_name:
                sections += _requirement_logs(run, node.executor_id)
            for timing in node.timings:
                if task_name and timing["name"] != task_name:
                    continue
                sections.append((f"task {timing['name']} ({timing['kind']})", node_file(folder, timing.get("log"))))
        for title, path in sections:
            shown += 1
            click.echo(printable_line(f"===== {node.executor_id}: {title}"))
            click.echo(printable(path.read_text(errors="replace")) if path and path.is_file() else "(no output)")
    if not shown:
        raise UsageError(f"no logs match in run {run_name}; check --node and --task against `unicorn-ansible results {run_name}`")


@cli.command()
@click.argument("run_name")
@click.option("--node", "node_name", help="Only this node.")
@click.option("--task", "task_name", help="Only this task (its name).")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Copy them into this folder (<node>/<task>/...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def artifacts(run_name: str, node_name: str | None, task_name: str | None, output: str | None,
              as_json: bool) -> None:
    """List the files a run's tasks left (node, task, path, size, sha256, where), or copy them.

    \b
    Example:
      unicorn-ansible artifacts capture-1 --node h1 --task capture -o captures/
    """
    from . import artifacts as listing

    run_dir = _resolve_run(run_name)
    chosen = listing.select(load_results(run_dir), node_name, task_name)
    if output:
        copied = listing.copy_to(run_dir, chosen, Path(output))
        click.echo(f"copied {copied} artifact(s) into {output}", err=True)
    elif as_json:
        click.echo(json.dumps([a.to_dict() for a in chosen], indent=2))
    else:
        print_table(listing.COLUMNS, listing.rows(chosen), f"artifacts of {run_dir.name}")
    sys.exit(EXIT_OK if all(a.file for a in chosen) else EXIT_FAILED)


@cli.command()
@click.argument("run_name")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="HTML file to write (default: in the run folder).")
def report(run_name: str, output: str | None) -> None:
    """Write a self-contained HTML report: a timeline per node, results, errors, links to logs.

    \b
    Example:
      unicorn-ansible report ping-1 -o ping-1.html
    """
    from .report import report_for

    written = report_for(_resolve_run(run_name), Path(output) if output else None)
    click.echo(f"report: {written}")


def _attach_testbed() -> None:
    try:
        from ..testbed.cli import testbed
    except ImportError:  # pragma: no cover - the testbed ships with the package
        return
    cli.add_command(testbed)


_attach_testbed()


@cli.command()
@click.argument("experiment_file", type=click.Path(dir_okay=False))
@_inventory_option
@click.option("-p", "--parameter", "parameters", multiple=True, metavar="NAME=V1,V2,...",
              help="A parameter of experiment(nodes, ...) and its values, separated by commas (repeatable).")
@click.option("--name", required=True, help="The campaign's name (its runs: NAME-0001, ...).")
@click.option("--repeat", type=click.IntRange(1, MAX_REPEAT), default=1, show_default=True,
              help="Runs of every combination of the parameters' values.")
@click.option("--order", type=click.Choice(ORDERS), default="random", show_default=True,
              help="Order the combinations run in: shuffled (a lab's drift then follows no parameter) or the grid's.")
@click.option("--seed", type=int, help="Seed of the random order (default: a new one, printed).")
@click.option("--retries", type=click.IntRange(0), default=1, show_default=True,
              help="More runs of a combination whose run failed before it is marked failed.")
@click.option("--dry-run", is_flag=True, help="List the runs that would be made, and make none.")
@_engine_options
def sweep(**arguments: Any) -> None:
    """Run an experiment over every combination of its parameters' values, each repeated, as a campaign.

    Each combination's run is an ordinary run (NAME-0001, ...). The campaign's state is kept in
    its folder: the same command again, after a crash, a Ctrl-C or a reboot, runs only what is
    not done, and several such commands at once share the work (never one combination twice).

    \b
    Example:
      unicorn-ansible sweep exp.py -p rate=10,20,50 -p size=1M,10M --repeat 5 --name rates
      unicorn-ansible campaign rates
    """
    from .campaign_cli import sweep_command

    sweep_command(**arguments)


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the progress (every combination) as JSON.")
@click.option("--report", "write_report", is_flag=True,
              help="Write the campaign's HTML report: a chart per measurement and parameter, mean and 95% CI.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The report's file (default: in the campaign's folder).")
@click.option("--csv", "as_csv", is_flag=True, help="Print the campaign's results as CSV: a row per value.")
def campaign(**arguments: Any) -> None:
    """Show a campaign's progress (done, failed, running, pending per combination, ETA), write
    its report, or print its results as one table. Without NAME, list the campaigns.

    \b
    Example:
      unicorn-ansible campaign rates
      unicorn-ansible campaign rates --report -o rates.html
      unicorn-ansible campaign rates --csv > rates.csv
    """
    from .campaign_cli import campaign_command

    campaign_command(**arguments)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="unicorn-ansible")


if __name__ == "__main__":
    main()
