# unicorn-ansible's collector: an Ansible aggregate callback plugin.
# It is copied into every run's project/callback_plugins/ and enabled by the
# run's settings, so a run by hand with ansible-playbook records the same files.
# It imports the run folder's layout from unicorn_ansible (ansible-playbook runs from
# the Python environment unicorn-ansible is installed in).
"""Record per-host status of a unicorn-ansible run into its run directory."""

from __future__ import annotations

DOCUMENTATION = """
    name: unicorn_collector
    type: aggregate
    short_description: records unicorn-ansible per-host status into the run directory
    description:
      - For each deployment of a unicorn-ansible run (a host's pipeline; a host may run several),
        writes its status file (nodes/<executor>/status.json) in the run folder that holds the
        generated playbooks. It records whether it was deployed, failed to deploy, was
        unreachable, executed or failed to execute, with the error and the executor's progress.
    requirements:
      - enabled in callbacks_enabled (the generated ansible.cfg does it)
"""

import dataclasses
import json
import os
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader

from unicorn_ansible.engine.controller import end_with_controller
from unicorn_ansible.engine.rundir import RunDir, executors, write_json
from unicorn_ansible.node.protocol import ExecutorStatus
from unicorn_ansible.node.wire import (
    MAX_EVENTS,
    DeployAnswer,
    ExecutorAnswer,
    NodeStatusRecord,
    ReportedTask,
    StatusEvent,
    WireError,
    last_object_line,
)
from unicorn_ansible.results.status import FAILED_PHASES, Phase

if TYPE_CHECKING:  # pragma: no cover (loaded already wherever the plugin runs)
    from ansible.executor.task_result import TaskResult
    from ansible.inventory.host import Host
    from ansible.playbook import Playbook
    from ansible.playbook.task import Task

_MAX_TEXT = 4000
#: characters of each text of a finished task the status keeps
_REPORTED_TEXT = 300


_FORWARD_FAILED = re.compile(r"remote port forwarding failed for listen port (\d+)")


def _explain_unreachable(message: str) -> str:
    """ssh's words for a tunnel port someone else holds, said in ours (ExitOnForwardFailure ends there)."""
    match = _FORWARD_FAILED.search(message)
    if not match:
        return message
    return (f"{message} (another program on the host holds 127.0.0.1:{match.group(1)}, the port this run's flag "
            "tunnel needs, so the host was not used; run again (a new run chooses another port), or find the "
            f"program with 'ss -ltnp' on the host)")


def _text(value: object, limit: int = _MAX_TEXT) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _answer(stdout: object, source: str) -> ExecutorAnswer:
    """The executor's answer in a step's output (node/wire.py's one reader); WireError if there is none."""
    if not isinstance(stdout, str):
        raise WireError(f"{source} is missing")
    return ExecutorAnswer.from_untrusted(last_object_line(stdout, source), source)


def _deploy_answer(stdout: object, source: str) -> DeployAnswer | None:
    """The deployment's answer in its output; None if there is none that is one."""
    try:
        return DeployAnswer.from_untrusted(last_object_line(stdout, source), source) if isinstance(stdout, str) else None
    except WireError:
        return None


def _ended_by_itself(stdout: object, source: str) -> bool:
    """Whether the time limit's stop found the pipeline over by itself (finished, failed, lost):
    then it was not stopped at its time limit."""
    try:
        status = _answer(stdout, source).status
    except WireError:
        return False
    return status not in (ExecutorStatus.CANCELLED, ExecutorStatus.TIMED_OUT, ExecutorStatus.RUNNING,
                          ExecutorStatus.STARTING)


def _progress(stdout: object, source: str) -> ExecutorAnswer | None:
    try:
        return _answer(stdout, source).progress()
    except WireError:
        return None


#: the node's phase after the executor's last answer, by its status
_PHASE_AFTER: dict[str, Phase] = {ExecutorStatus.FINISHED: Phase.EXECUTED, ExecutorStatus.TIMED_OUT: Phase.TIMED_OUT,
                                  ExecutorStatus.CANCELLED: Phase.CANCELLED}


def _reported(entry: ReportedTask) -> ReportedTask:
    """A finished task as the status keeps it: its texts cut."""
    def cut(text: str | None) -> str | None:
        return None if text is None else _text(text, _REPORTED_TEXT)

    return dataclasses.replace(entry, name=_text(entry.name, _REPORTED_TEXT), type=cut(entry.type),
                               kind=cut(entry.kind), preview=cut(entry.preview))


def _load_template_plugins() -> None:
    """Load Ansible's filter and test plugins once, here in ansible-playbook's main process.

    Each task runs in a worker forked from this process, and a worker that templates the role's
    first filter (``default``) or test (``failed``) loads every built-in plugin file of that kind
    first: about 5 ms of CPU per worker, which is per host and per task. Loaded before the forks,
    every worker finds them loaded. Only a saving: whatever goes wrong here, the workers load them."""
    try:
        filter_loader.get("default")
        test_loader.get("failed")
    except Exception:  # noqa: BLE001 (a plugin that fails to load fails in the worker, as without this)
        pass


class CallbackModule(CallbackBase):  # type: ignore[misc]  # (Ansible's classes carry no types)
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "unicorn_collector"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.run: RunDir | None = None
        self.hosts: dict[str, NodeStatusRecord] = {}  # executor id -> its status
        self.finished_seqs: dict[str, set[int | None]] = {}  # executor id -> the tasks appended to finished.jsonl
        self.executors: dict[str, list[str]] = {}  # host -> its executor ids (a host may run several pipelines)
        self.watching = False

    # -- where and what ----------------------------------------------------
    def v2_playbook_on_start(self, playbook: Playbook) -> None:
        project = os.path.dirname(os.path.abspath(playbook._file_name))
        run = RunDir(os.path.dirname(project))
        if run.exists():
            self.run = run
            for executor, host in executors(run.record()).items():
                self.executors.setdefault(host, []).append(executor)
            _load_template_plugins()
        if not self.watching:  # the play ends within a second of its controller's death (kill -9)
            self.watching = end_with_controller()

    def _status(self, executor: str) -> NodeStatusRecord:
        if executor not in self.hosts:
            assert self.run is not None
            known = self.run.node_status(executor) if self.run.node_status_file(executor).exists() else None
            self.hosts[executor] = known or NodeStatusRecord(host=executor, phase=Phase.CONNECTING, prepared=False)
        return self.hosts[executor]

    def _change(self, executor: str, **changes: object) -> NodeStatusRecord:
        """The executor's status with ``changes`` (fields of a NodeStatusRecord), saved."""
        assert self.run is not None
        status = self.hosts[executor] = dataclasses.replace(self._status(executor), **changes)  # type: ignore[arg-type]
        write_json(self.run.node_status_file(executor), status.to_json())
        return status

    def _executors_of(self, host: str) -> list[str]:
        return self.executors.get(host) or [host]

    def _executor(self, result: TaskResult, answer: ExecutorAnswer | None = None) -> str | None:
        """The deployment a result is about: the item of a loop over the host's executors, or the one
        the executor's answer names; None when it is about all of the host's deployments."""
        data = result._result
        host = result._host.get_name()
        if data.get("_ansible_item_result"):
            label = data.get("_ansible_item_label")
            item = data.get(str(data.get("ansible_loop_var") or ""))
            found = label if isinstance(label, str) else item if isinstance(item, str) else None
        else:
            if answer is None:
                try:
                    answer = _answer(data.get("stdout"), f"{host}: the executor's answer")
                except WireError:
                    answer = None
            found = answer.deployment if answer is not None else None
        return found if found in self._executors_of(host) else None  # a host names only its own

    def _update(self, result: TaskResult, outcome: str, answer: ExecutorAnswer | None = None, /,
                **changes: object) -> None:
        if self.run is None:
            return
        step = (result._task.vars or {}).get("unicorn_step")
        if step is None and outcome != "unreachable":
            return
        executor = self._executor(result, answer)
        event = StatusEvent(step=step, outcome=outcome, time=time.time())
        for name in [executor] if executor else self._executors_of(result._host.get_name()):
            events = (*self._status(name).events, event)[-MAX_EVENTS:]
            self._change(name, events=events, **changes)

    @staticmethod
    def _looped(result: TaskResult) -> bool:
        """The summary of a task looped over a host's executors (its items were recorded one by one)."""
        return isinstance(result._result.get("results"), list)

    @staticmethod
    def _step(result: TaskResult) -> str | None:
        step = (result._task.vars or {}).get("unicorn_step")
        return step if isinstance(step, str) else None

    # -- events --------------------------------------------------------------
    def v2_runner_on_start(self, host: Host, task: Task) -> None:
        if self.run is None:
            return
        step = (task.vars or {}).get("unicorn_step")
        phase = {"deploy": Phase.DEPLOYING, "start": Phase.RUNNING, "run": Phase.RUNNING}.get(str(step))
        if phase is None:
            return
        for name in self._executors_of(host.get_name()):
            if self._status(name).phase not in FAILED_PHASES:
                started = {"deploy_started": time.time()} if step == "deploy" else {}
                self._change(name, phase=phase, **started)

    def v2_runner_on_ok(self, result: TaskResult) -> None:
        if not self._looped(result):
            self._on_ok(result)

    def v2_runner_item_on_ok(self, result: TaskResult) -> None:
        if not result._result.get("unreachable"):  # the host's unreachable event says it, for all
            self._on_ok(result)

    def _on_ok(self, result: TaskResult) -> None:
        step = self._step(result)
        data = result._result
        source = f"{result._host.get_name()}: the executor's answer"
        if step == "deploy":
            report = _deploy_answer(data.get("stdout"), source)
            if data.get("rc") == 0 and report is not None:
                self._update(result, "ok", phase=Phase.DEPLOYED, prepared=True, deploy=report,
                             deploy_finished=time.time())
            else:
                self._update(result, "failed", deploy=report, deploy_finished=time.time())
        elif step == "run":
            self._on_run(result, source)
        elif step == "fetch":
            self._update(result, "ok", fetched=True)
        elif step == "timeout" and _ended_by_itself(data.get("stdout"), source):
            self._on_run(result, source)  # it ended before the stop reached it: as it ended, no time limit
        elif step == "timeout":
            self._update(result, "ok", phase=Phase.TIMED_OUT, timed_out=True,
                         progress=_progress(data.get("stdout"), source),
                         error=_text(data.get("controller_error") or
                                     "the pipeline was still running when the run's time limit was reached; "
                                     "it was stopped (raise --run-timeout)"), **self._fetched(data))
        elif step == "cancel":
            self._update(result, "ok", phase=Phase.CANCELLED, cancelled=True,
                         progress=_progress(data.get("stdout"), source), **self._fetched(data),
                         **({"error": _text(data["controller_error"])} if data.get("controller_error") else {}))
        elif step == "deploy-failed":  # a failed deployment beside others that deployed: the host goes on
            self._on_failed(result)

    def _on_run(self, result: TaskResult, source: str) -> None:
        """The call that saw the pipeline over (or one more poll): its phase, progress and results."""
        data = result._result
        answer: ExecutorAnswer | None = None
        refused: str | None = None
        try:
            answer = _answer(data.get("stdout"), source)
        except WireError as exc:
            refused = f"the executor's answer is refused: {exc}"
        executor = self._executor(result, answer)
        if answer is not None:
            self._remember_finished(executor, answer)
        status = answer.status if answer is not None else None
        phase = _PHASE_AFTER.get(status or "", Phase.EXECUTION_FAILED)
        # the time limit is no flag that stays: a pipeline found over by itself later (collect) is as it
        # ended; one the time limit's stop cancelled stays timed out
        stopped_at_limit = executor is not None and bool(self._status(executor).timed_out)
        if phase == Phase.CANCELLED and stopped_at_limit:
            phase = Phase.TIMED_OUT
        if (status == ExecutorStatus.NOT_STARTED and answer is not None and answer.error and executor is not None
                and not self._status(executor).prepared):  # the host refused: its deployment never finished
            phase = Phase.DEPLOY_FAILED
        error = None if phase not in (Phase.EXECUTION_FAILED, Phase.DEPLOY_FAILED) else _text(
            refused or (answer.error if answer else None) or f"executor ended: {status}")
        if data.get("controller_error"):  # the results could not be written here (this machine's disk)
            error = _text(data["controller_error"])
        # a host lost earlier and reached again (collect): it is no longer unreachable
        # the call that saw it over brought its results home (roles/unicorn's unicorn_node)
        known = self._status(executor) if executor is not None else None
        kept_error = known.error if known is not None and (
            (stopped_at_limit and phase == Phase.TIMED_OUT)  # the stop's words
            or (phase == known.phase == Phase.DEPLOY_FAILED)) else None  # the failed deployment's own words
        self._update(result, "ok", answer, phase=phase, progress=answer.progress() if answer else None,
                     error=kept_error or error, unreachable=False, timed_out=True if phase == Phase.TIMED_OUT else None,
                     **self._fetched(data))

    @staticmethod
    def _fetched(data: Mapping[str, object]) -> dict[str, bool]:
        return {"fetched": True} if data.get("fetched") is not None else {}

    def v2_runner_retry(self, result: TaskResult) -> None:
        if self.run is None or self._step(result) != "run":
            return
        try:
            answer = _answer(result._result.get("stdout"), f"{result._host.get_name()}: the executor's answer")
        except WireError:
            return
        executor = self._executor(result, answer)
        if executor is not None:
            self._remember_finished(executor, answer)
            self._change(executor, progress=answer.progress())

    def _remember_finished(self, executor: str | None, answer: ExecutorAnswer) -> None:
        """Keep the headers of finished tasks the executor reported: if the host is lost
        before its results are fetched, the controller still knows what finished."""
        if executor is None or not answer.new:
            return
        assert self.run is not None
        known = self.finished_seqs.get(executor)
        if known is None:  # (a collect after an earlier play: what that one kept)
            known = self.finished_seqs[executor] = {entry.seq for entry in self.run.node_finished(executor)}
        fresh = [_reported(entry) for entry in answer.new if entry.seq not in known]
        if fresh:  # appended, each once: status.json is not rewritten with every task so far at each poll
            known.update(entry.seq for entry in fresh)
            lines = "".join(json.dumps(entry.to_json(), separators=(",", ":")) + "\n" for entry in fresh)
            path = self.run.node_finished_file(executor)
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(lines)

    def v2_runner_on_failed(self, result: TaskResult, ignore_errors: bool = False) -> None:
        if not self._looped(result):
            self._on_failed(result)

    def v2_runner_item_on_failed(self, result: TaskResult) -> None:
        if not result._result.get("unreachable"):  # the host's unreachable event says it, for all
            self._on_failed(result)

    def _on_failed(self, result: TaskResult) -> None:
        step = self._step(result)
        data = result._result
        message = _text(data.get("msg") or data.get("stderr") or data.get("stdout") or "failed")
        if step == "deploy":  # its report (the requirements run) is kept; the rescue's step says why
            self._update(result, "failed", phase=Phase.DEPLOY_FAILED, prepared=False, error=message,
                         deploy=_deploy_answer(data.get("stdout"), f"{result._host.get_name()}: the deployment's answer"),
                         deploy_finished=time.time())
        elif step == "deploy-failed":
            self._update(result, "failed", phase=Phase.DEPLOY_FAILED, prepared=False, error=message,
                         deploy_finished=time.time())
        elif step is not None:
            self._update(result, "failed", phase=Phase.EXECUTION_FAILED, error=message)

    def v2_runner_on_unreachable(self, result: TaskResult) -> None:
        data = result._result  # a looped task's reason is its unreachable item's
        items = [item for item in data.get("results") or [] if isinstance(item, dict) and item.get("unreachable")]
        message = _explain_unreachable(_text((items[0] if items else data).get("msg") or "unreachable"))
        self._update(result, "unreachable", phase=Phase.UNREACHABLE, error=message, unreachable=True)
