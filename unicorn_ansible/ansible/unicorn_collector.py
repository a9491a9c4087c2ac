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

import json
import os
import re
import time

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader

from unicorn_ansible.engine.controller import end_with_controller
from unicorn_ansible.engine.rundir import RunDir, executors, read_json, write_json
from unicorn_ansible.node.protocol import ExecutorStatus
from unicorn_ansible.results.status import FAILED_PHASES, Phase

_MAX_TEXT = 4000


_FORWARD_FAILED = re.compile(r"remote port forwarding failed for listen port (\d+)")


def _explain_unreachable(message):
    """ssh's words for a tunnel port someone else holds, said in ours (ExitOnForwardFailure ends there)."""
    match = _FORWARD_FAILED.search(message)
    if not match:
        return message
    return (f"{message} (another program on the host holds 127.0.0.1:{match.group(1)}, the port this run's flag "
            "tunnel needs, so the host was not used; run again (a new run chooses another port), or find the "
            f"program with 'ss -ltnp' on the host)")


def _text(value, limit=_MAX_TEXT):
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json(text):
    """The output's last line that is a JSON object (a terminal or become may add lines and "\\r\\n")."""
    if not isinstance(text, str):
        return None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
                return None
            return data if isinstance(data, dict) else None
    return None


def _load_template_plugins():
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


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "unicorn_collector"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.run = None
        self.hosts = {}  # executor id -> its status
        self.executors = {}  # host -> its executor ids (a host may run several pipelines)
        self.watching = False

    # -- where and what ----------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        project = os.path.dirname(os.path.abspath(playbook._file_name))
        run = RunDir(os.path.dirname(project))
        if run.exists():
            self.run = run
            for executor, host in executors(run.record()).items():
                self.executors.setdefault(host, []).append(executor)
            _load_template_plugins()
        if not self.watching:  # the play ends within a second of its controller's death (kill -9)
            self.watching = end_with_controller()

    def _status(self, executor):
        if executor not in self.hosts:
            self.hosts[executor] = read_json(self.run.node_status_file(executor)) or {
                "host": executor, "phase": Phase.CONNECTING, "prepared": False, "error": None, "events": []}
        return self.hosts[executor]

    def _save(self, executor):
        write_json(self.run.node_status_file(executor), self.hosts[executor])

    def _executors_of(self, host):
        return self.executors.get(host) or [host]

    def _executor(self, result):
        """The deployment a result is about: the item of a loop over the host's executors, or the one
        the executor's answer names; None when it is about all of the host's deployments."""
        data = result._result
        host = result._host.get_name()
        if data.get("_ansible_item_result"):
            label = data.get("_ansible_item_label")
            item = data.get(data.get("ansible_loop_var") or "")
            found = label if isinstance(label, str) else item if isinstance(item, str) else None
        else:
            found = (_json(data.get("stdout")) or {}).get("deployment")
        return found if found in self._executors_of(host) else None  # a host names only its own

    def _update(self, result, outcome, **changes):
        if self.run is None:
            return
        step = (result._task.vars or {}).get("unicorn_step")
        if step is None and outcome != "unreachable":
            return
        executor = self._executor(result)
        for name in [executor] if executor else self._executors_of(result._host.get_name()):
            status = self._status(name)
            status.update(changes)
            status["events"].append({"step": step, "outcome": outcome, "time": time.time()})
            self._save(name)

    @staticmethod
    def _looped(result):
        """The summary of a task looped over a host's executors (its items were recorded one by one)."""
        return isinstance(result._result.get("results"), list)

    @staticmethod
    def _step(result):
        return (result._task.vars or {}).get("unicorn_step")

    # -- events --------------------------------------------------------------
    def v2_runner_on_start(self, host, task):
        if self.run is None:
            return
        step = (task.vars or {}).get("unicorn_step")
        phase = {"deploy": Phase.DEPLOYING, "start": Phase.RUNNING, "run": Phase.RUNNING}.get(step)
        if phase is None:
            return
        for name in self._executors_of(host.get_name()):
            status = self._status(name)
            if status.get("phase") not in FAILED_PHASES:
                status["phase"] = phase
                if step == "deploy":
                    status["deploy_started"] = time.time()
                self._save(name)

    def v2_runner_on_ok(self, result):
        if not self._looped(result):
            self._on_ok(result)

    def v2_runner_item_on_ok(self, result):
        if not result._result.get("unreachable"):  # the host's unreachable event says it, for all
            self._on_ok(result)

    def _on_ok(self, result):
        step = self._step(result)
        data = result._result
        if step == "deploy":
            report = _json(data.get("stdout"))
            if data.get("rc") == 0 and report is not None:
                self._update(result, "ok", phase=Phase.DEPLOYED, prepared=True, deploy=report,
                             deploy_finished=time.time())
            else:
                self._update(result, "failed", deploy=report, deploy_finished=time.time())
        elif step == "run":
            state = _json(data.get("stdout")) or {}
            self._remember_finished(self._executor(result), state)
            phase = {ExecutorStatus.FINISHED: Phase.EXECUTED, ExecutorStatus.TIMED_OUT: Phase.TIMED_OUT,
                     ExecutorStatus.CANCELLED: Phase.CANCELLED}.get(state.get("status"), Phase.EXECUTION_FAILED)
            error = None if phase != Phase.EXECUTION_FAILED else _text(
                state.get("error") or "executor ended: %s" % state.get("status"))
            # a host lost earlier and reached again (collect): it is no longer unreachable
            # the call that saw it over brought its results home (roles/unicorn's unicorn_node)
            self._update(result, "ok", phase=phase, progress=state, error=error, unreachable=False,
                         **self._fetched(data))
        elif step == "fetch":
            self._update(result, "ok", fetched=True)
        elif step == "timeout":
            self._update(result, "ok", phase=Phase.TIMED_OUT, timed_out=True, progress=_json(data.get("stdout")),
                         error="the pipeline was still running when the run's time limit was reached; "
                               "it was stopped (raise --run-timeout)", **self._fetched(data))
        elif step == "cancel":
            self._update(result, "ok", phase=Phase.CANCELLED, cancelled=True, progress=_json(data.get("stdout")),
                         **self._fetched(data))
        elif step == "deploy-failed":  # a failed deployment beside others that deployed: the host goes on
            self._on_failed(result)

    @staticmethod
    def _fetched(data):
        return {"fetched": True} if data.get("fetched") is not None else {}

    def v2_runner_retry(self, result):
        if self.run is None or self._step(result) != "run":
            return
        state = _json(result._result.get("stdout"))
        executor = self._executor(result)
        if state is not None and executor is not None:
            self._remember_finished(executor, state)
            self._status(executor)["progress"] = state
            self._save(executor)

    def _remember_finished(self, executor, state):
        """Keep the headers of finished tasks the executor reported: if the host is lost
        before its results are fetched, the controller still knows what finished."""
        fresh = state.pop("new", None) or []
        if executor is None:
            return
        finished = self._status(executor).setdefault("finished", [])
        known = {entry.get("seq") for entry in finished}
        for entry in fresh:
            if isinstance(entry, dict) and entry.get("seq") not in known:
                finished.append({k: _text(v, 300) if isinstance(v, str) else v for k, v in entry.items()})

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not self._looped(result):
            self._on_failed(result)

    def v2_runner_item_on_failed(self, result):
        if not result._result.get("unreachable"):  # the host's unreachable event says it, for all
            self._on_failed(result)

    def _on_failed(self, result):
        step = self._step(result)
        data = result._result
        message = _text(data.get("msg") or data.get("stderr") or data.get("stdout") or "failed")
        if step == "deploy":  # its report (the requirements run) is kept; the rescue's step says why
            self._update(result, "failed", phase=Phase.DEPLOY_FAILED, prepared=False, error=message,
                         deploy=_json(data.get("stdout")), deploy_finished=time.time())
        elif step == "deploy-failed":
            self._update(result, "failed", phase=Phase.DEPLOY_FAILED, prepared=False, error=message,
                         deploy_finished=time.time())
        elif step is not None:
            self._update(result, "failed", phase=Phase.EXECUTION_FAILED, error=message)

    def v2_runner_on_unreachable(self, result):
        data = result._result  # a looped task's reason is its unreachable item's
        items = [item for item in data.get("results") or [] if isinstance(item, dict) and item.get("unreachable")]
        message = _explain_unreachable(_text((items[0] if items else data).get("msg") or "unreachable"))
        self._update(result, "unreachable", phase=Phase.UNREACHABLE, error=message, unreachable=True)
