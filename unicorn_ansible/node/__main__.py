"""The node's command line: ``python unicorn-node.pyz COMMAND --workdir DIR``.

``deploy``
    Prepare the node's environment from ``DIR/deploy.json``: check the Python
    version, create a virtual environment, run every requirement in order with
    ``/bin/sh`` inside it, stop at the first failing one. Skipped when the host
    already has exactly that environment. Writes ``DIR/deploy-report.json``.
``start``
    Start ``run`` detached from the SSH session (its own session, stdio to
    files), unless this work folder already has an executor started; with
    ``--timeout``, then wait that long at most for it to finish or progress.
``state``
    Print the executor's state.
``run``
    Run the pipeline in ``DIR/pipeline.pkl`` in the foreground.
``cancel``
    Stop the executor and every process its tasks started.

Each prints one JSON object. The files of a work folder are described in protocol.py.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import gc
import json
import os
import shutil
import sys
import time
import traceback
import zipfile
from collections.abc import Mapping

# control (and with it cloudpickle and returns) is imported by the commands that use it: a
# deployment's process, every run on every host, starts ~0.03 s sooner without them
from .files import atomic_file, write_json_atomic
from .processes import keep_files_private
from .protocol import (
    BUNDLE_NODE_FILES,
    BUNDLE_TASK_API,
    DEFAULT_LOG_CAP,
    DEPLOY_REPORT,
    DEPLOY_SPEC,
    FINAL_STATUSES,
    NODE_BUNDLE,
    NODE_SPEC,
    OUTBOX,
    PIPELINE,
    SHIPPED_MODULES_VARIABLE,
    STATE,
    ExecutorStatus,
)
from .wire import (
    ERROR_CHARS,
    CommandSummary,
    DeployAnswer,
    DeployReport,
    DeploySpec,
    ExecutorAnswer,
    ExecutorState,
    ImportNeed,
    NodeSpec,
    StartedSummary,
    WireError,
    clip,
)


def _bundle() -> str | None:
    """The zipapp this runs from, if it runs from one."""
    path = os.path.abspath(sys.argv[0])
    return path if zipfile.is_zipfile(path) else None


def _self_command() -> list[str]:
    """How to run this node package again: its bundle, or the package itself (``-m``)."""
    bundle = _bundle()
    if bundle:
        return [bundle]
    return ["-m", __spec__.parent if __spec__ and __spec__.parent else "unicorn_ansible.node"]


def _replace(target: str, data: bytes) -> None:
    with atomic_file(target, 0o600) as handle:
        handle.write(data)


def keep_bundle(workdir: str) -> None:
    """Keep this bundle in the work folder, where start and cancel run it later: the role's
    unicorn_deploy writes it there and runs it from there (nothing to do), Ansible's script
    action (its fallback) runs it from a temporary copy it removes afterwards."""
    bundle, target = _bundle(), os.path.join(workdir, NODE_BUNDLE)
    if bundle and bundle != target:
        with open(bundle, "rb") as source, atomic_file(target, 0o600) as handle:
            shutil.copyfileobj(source, handle)


def unpack_node_files(workdir: str) -> None:
    """The bundle the deployment play shipped carries this node's files under node/: put them in the work folder."""
    bundle = _bundle()
    if bundle is None:
        return
    with zipfile.ZipFile(bundle) as archive:
        for member in archive.namelist():
            name = member[len(BUNDLE_NODE_FILES):]
            if member.startswith(BUNDLE_NODE_FILES) and name and "/" not in name:
                _replace(os.path.join(workdir, name), archive.read(member))


def _make_private(workdir: str) -> None:
    """The work folder and the folders above it up to ``hosts/`` (made by older versions, maybe
    readable by others) only for this user: ``<root>/hosts/<host>/runs/<run>``."""
    folder = workdir
    for _ in range(4):
        if os.stat(folder).st_uid == os.getuid():
            os.chmod(folder, 0o700)
        folder = os.path.dirname(folder)


def _with_host_settings(spec: DeploySpec, engine: str | None, base_image: str | None) -> DeploySpec:
    """A container spec completed by the host's inventory settings (the pipeline's base image wins)."""
    if spec.container is not None:
        container = dataclasses.replace(spec.container, engine=engine or None,
                                        base_image=spec.container.base_image or base_image or None)
        spec = dataclasses.replace(spec, container=container)
    return spec


def _deploy_spec(workdir: str) -> DeploySpec:
    return DeploySpec.read(os.path.join(workdir, DEPLOY_SPEC)) or DeploySpec()


def _node_spec(workdir: str) -> NodeSpec:
    return NodeSpec.read(os.path.join(workdir, NODE_SPEC)) or NodeSpec()


def _summary(report: DeployReport) -> DeployAnswer:
    """The deployment's answer: the report's outcome, the executor's Python, each requirement in short."""
    return DeployAnswer(
        ok=report.ok, skipped=report.skipped, error=report.error, python=report.python,
        environment=report.environment, cancelled=report.cancelled, notice=report.notice,
        # the executor's Python on this host: the role's start runs with it, so it can fork the executor
        interpreter=report.interpreter if report.ok and report.container is None else None,
        commands=tuple(CommandSummary(command=c.command[:200], rc=c.rc,
                                      seconds=round((c.end or 0.0) - (c.start or 0.0), 3)) for c in report.commands))


def _deploy(workdir: str, engine: str | None, base_image: str | None, then_start: bool = False) -> int:
    from .deploy import deploy

    os.makedirs(workdir, mode=0o700, exist_ok=True)
    _make_private(workdir)
    keep_bundle(workdir)
    unpack_node_files(workdir)
    report = deploy(workdir, _with_host_settings(_deploy_spec(workdir), engine, base_image))
    if not report.ok:  # the deployment play fetches it: the requirements' logs reach the controller
        from .outbox import pack_outbox

        pack_outbox(workdir)
    summary = _summary(report)
    if then_start and report.ok:  # the pipeline starts in the same round trip (run, site.yml)
        from .control import start

        started = start(workdir, _kept_command(workdir))
        summary = dataclasses.replace(summary, started=StartedSummary(
            already_started=bool(started.already_started), pid=started.pid))
    print(json.dumps(summary.to_json()))
    return 0 if report.ok else 1


def _kept_command(workdir: str) -> list[str]:
    """How to run this node package after the deployment: the bundle kept in the work folder
    (the script action's temporary copy is gone by then), or the package itself."""
    return [os.path.join(workdir, NODE_BUNDLE)] if _bundle() else _self_command()


def _reply(workdir: str, answer: ExecutorAnswer, inline: int | None = None, packed: bool = False) -> str:
    """A command's JSON answer; ``outbox`` is where this host keeps the outbox, with the work folder
    resolved here, once (``~`` is ``$HOME``), so the fetch never resolves it another way;
    ``deployment``: which of the node's pipelines answers (its executor id, from node.json).
    With ``inline`` (bytes), the outbox of a final state (or one just ``packed``: cancel) up to
    that size comes with the answer as ``outbox_data`` (base64): the controller's call needs
    no transfer of its own for it (roles/unicorn's unicorn_node)."""
    answer = dataclasses.replace(answer, outbox=os.path.join(workdir, OUTBOX), deployment=_node_spec(workdir).deployment)
    if inline is not None and (packed or answer.status in FINAL_STATUSES):
        try:
            with open(os.path.join(workdir, OUTBOX), "rb") as handle:
                data = handle.read(inline + 1)
        except OSError:
            data = None
        if data is not None and len(data) <= inline:
            answer = dataclasses.replace(answer, outbox_data=base64.b64encode(data).decode("ascii"))
    return json.dumps(answer.to_json())


def _start(workdir: str, timeout: float | None, inline: int | None = None) -> int:
    from .control import start, wait

    started = start(workdir, _self_command(), run_here=lambda: _run(workdir))
    refused = started.status == ExecutorStatus.NOT_STARTED  # not deployed: nothing to wait for
    answer = wait(workdir, timeout) if timeout and not refused else started
    print(_reply(workdir, dataclasses.replace(answer, already_started=bool(started.already_started)), inline))
    return 0


def _run_environment(spec: NodeSpec) -> dict[str, str]:
    environment = dict(spec.environment_variables)
    flags = spec.flags
    if flags is not None and flags.endpoint:  # for unicorn_ansible's flag functions and tasks (see model/flags.py)
        environment.update(UNICORN_FLAGS=flags.endpoint, UNICORN_FLAGS_TOKEN=flags.token or "")
    if flags is not None:  # flag-store: NETUNICORN_* for netunicorn's flag tasks
        environment.update(flags.environment)
    return environment


def _time_left(workdir: str, spec: NodeSpec) -> float | None:
    """The node's time limit covers its deployment too: what the deployment used is gone."""
    limit = spec.time_limit
    report = DeployReport.read(os.path.join(workdir, DEPLOY_REPORT))
    if limit is None or report is None:
        return limit
    return max(0.001, float(limit) - deployment_seconds(report, float(limit)))


def deployment_seconds(report: DeployReport, limit: float) -> float:
    """Seconds the deployment took, as the pipeline's time limit counts them: its duration on the
    monotonic clock (a wall-clock jump during it changes nothing), at most the limit; a report of
    an older host without one: its wall-clock times, unless they are absurd (negative, or longer than
    the limit the deployment itself kept to: a jump), then nothing (issue 28, item 11)."""
    if report.duration is not None:
        return min(max(0.0, report.duration), limit)
    if report.finished is None or report.started is None:
        return 0.0
    wall = report.finished - report.started
    return wall if 0.0 <= wall <= limit else 0.0


def _add_task_api() -> None:
    """Tasks may ``import unicorn_ansible`` inside run() (flags, Results): the bundle's small one,
    last on the path, so one installed on the host wins."""
    bundle = _bundle()
    if bundle:
        sys.path.append(os.path.join(bundle, BUNDLE_TASK_API))


def _load_error(exc: Exception, imports: Mapping[str, ImportNeed]) -> str:
    """Why the pipeline cannot load; for a module this host cannot import, the tasks that need
    it and the requirement that installs it (the controller listed them in node.json)."""
    missing = exc.name if isinstance(exc, ImportError) else None
    if not missing:
        return clip(f"cannot load the pipeline: {type(exc).__name__}: {exc}", ERROR_CHARS)
    needed = imports.get(missing.split(".")[0]) or ImportNeed()
    install = needed.install or f"pip install {missing.split('.')[0]}"
    tasks = ", ".join(needed.tasks) or "a task of the pipeline"
    return (f"cannot load the pipeline: module {missing} is not importable on this host and task(s) {tasks} "
            f"need it; install it with a requirement of that task: requirements = [{install!r}]")


def _run(workdir: str) -> int:
    import cloudpickle

    _add_task_api()

    from .outcome import learn_installs
    from .scheduler import Executor

    spec = _node_spec(workdir)
    os.environ[SHIPPED_MODULES_VARIABLE] = "1"  # the user's modules it carries become importable
    try:
        with open(os.path.join(workdir, PIPELINE), "rb") as handle:
            pipeline = cloudpickle.load(handle)
    except Exception as exc:
        write_json_atomic(os.path.join(workdir, STATE), ExecutorState(
            status=ExecutorStatus.FAILED, finished=time.time(), done=0, total=0,
            error=_load_error(exc, spec.imports)).to_json())
        traceback.print_exc()
        return 1
    del os.environ[SHIPPED_MODULES_VARIABLE]
    learn_installs(spec.imports)  # an import in run() that fails says what to install
    gc.freeze()  # what is loaded now is never collected: no collection (here or in a task) writes to its pages
    log_cap = spec.log_cap if spec.log_cap is not None else DEFAULT_LOG_CAP
    state = Executor(pipeline, workdir, environment=_run_environment(spec), task_timeout=spec.task_timeout,
                     log_cap=log_cap, time_limit=_time_left(workdir, spec)).run()
    return 0 if state.status == ExecutorStatus.FINISHED else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unicorn-node", description="The node side of unicorn-ansible.")
    parser.add_argument("command", choices=["deploy", "start", "run", "cancel", "state"])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--timeout", type=float, default=None,
                        help="start: seconds to wait at most for the pipeline to finish (0 by default: return at once)")
    parser.add_argument("--container-engine", default=None,
                        help="deploy: the engine of a DockerImage environment (auto: podman, then docker)")
    parser.add_argument("--container-base-image", default=None,
                        help="deploy: the base image of an environment built from requirements")
    parser.add_argument("--inline-outbox", type=int, default=None, metavar="BYTES",
                        help="start, cancel: once the pipeline is over, an outbox up to BYTES comes with the answer")
    parser.add_argument("--start", action="store_true",
                        help="deploy: start the pipeline detached right after a successful deployment")
    args = parser.parse_args(argv)
    keep_files_private()
    try:
        return _command(args)
    except WireError as exc:  # a file of the work folder that is not what its writer writes
        print(f"unicorn-node {args.command}: {exc}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace) -> int:
    workdir = os.path.abspath(os.path.expanduser(args.workdir))
    if args.command == "deploy":
        return _deploy(workdir, args.container_engine, args.container_base_image, args.start)
    if args.command == "start":
        return _start(workdir, args.timeout, args.inline_outbox)
    if args.command == "state":
        from .control import current_state

        print(_reply(workdir, ExecutorAnswer.of(current_state(workdir))))
        return 0
    if args.command == "cancel":
        from .control import cancel

        print(_reply(workdir, cancel(workdir), args.inline_outbox, packed=True))
        return 0
    return _run(workdir)


if __name__ == "__main__":
    sys.exit(main())
