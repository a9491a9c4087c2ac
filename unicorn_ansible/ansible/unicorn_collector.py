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
      - For each host of a unicorn-ansible run, writes the host's status file
        (nodes/<host>/status.json) in the run folder that holds the generated playbooks. It records whether the host was deployed, failed to deploy, was
        unreachable, executed or failed to execute, with the error and the executor's progress.
    requirements:
      - enabled in callbacks_enabled (the generated ansible.cfg does it)
"""

import json
import os
import re
import time

from ansible.plugins.callback import CallbackBase

from unicorn_ansible.engine.controller import end_with_controller
from unicorn_ansible.engine.rundir import RunDir, read_json, write_json
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
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "unicorn_collector"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.run = None
        self.hosts = {}
        self.watching = False

    # -- where and what ----------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        project = os.path.dirname(os.path.abspath(playbook._file_name))
        run = RunDir(os.path.dirname(project))
        if run.exists():
            self.run = run
        if not self.watching:  # the play ends within a second of its controller's death (kill -9)
            self.watching = end_with_controller()

    def _status(self, host):
        if host not in self.hosts:
            self.hosts[host] = read_json(self.run.node_status_file(host)) or {
                "host": host, "phase": Phase.CONNECTING, "prepared": False, "error": None, "events": []}
        return self.hosts[host]

    def _save(self, host):
        write_json(self.run.node_status_file(host), self.hosts[host])

    def _update(self, result, outcome, **changes):
        if self.run is None:
            return
        host = result._host.get_name()
        step = (result._task.vars or {}).get("unicorn_step")
        if step is None and outcome != "unreachable":
            return
        status = self._status(host)
        status.update(changes)
        status["events"].append({"step": step, "outcome": outcome, "time": time.time()})
        self._save(host)

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
        status = self._status(host.get_name())
        if status.get("phase") not in FAILED_PHASES:
            status["phase"] = phase
            if step == "deploy":
                status["deploy_started"] = time.time()
            self._save(host.get_name())

    def v2_runner_on_ok(self, result):
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
            self._remember_finished(result._host.get_name(), state)
            phase = {ExecutorStatus.FINISHED: Phase.EXECUTED, ExecutorStatus.TIMED_OUT: Phase.TIMED_OUT,
                     ExecutorStatus.CANCELLED: Phase.CANCELLED}.get(state.get("status"), Phase.EXECUTION_FAILED)
            error = None if phase != Phase.EXECUTION_FAILED else _text(
                state.get("error") or "executor ended: %s" % state.get("status"))
            # a host lost earlier and reached again (collect): it is no longer unreachable
            self._update(result, "ok", phase=phase, progress=state, error=error, unreachable=False)
        elif step == "fetch":
            self._update(result, "ok", fetched=True)
        elif step == "timeout":
            self._update(result, "ok", phase=Phase.TIMED_OUT, timed_out=True, progress=_json(data.get("stdout")),
                         error="the pipeline was still running when the run's time limit was reached; "
                               "it was stopped (raise --run-timeout)")
        elif step == "cancel":
            self._update(result, "ok", phase=Phase.CANCELLED, cancelled=True, progress=_json(data.get("stdout")))

    def v2_runner_retry(self, result):
        if self.run is None or self._step(result) != "run":
            return
        state = _json(result._result.get("stdout"))
        if state is not None:
            host = result._host.get_name()
            self._remember_finished(host, state)
            self._status(host)["progress"] = state
            self._save(host)

    def _remember_finished(self, host, state):
        """Keep the headers of finished tasks the executor reported: if the host is lost
        before its results are fetched, the controller still knows what finished."""
        fresh = state.pop("new", None) or []
        finished = self._status(host).setdefault("finished", [])
        known = {entry.get("seq") for entry in finished}
        for entry in fresh:
            if isinstance(entry, dict) and entry.get("seq") not in known:
                finished.append({k: _text(v, 300) if isinstance(v, str) else v for k, v in entry.items()})

    def v2_runner_on_failed(self, result, ignore_errors=False):
        step = self._step(result)
        data = result._result
        message = _text(data.get("msg") or data.get("stderr") or data.get("stdout") or "failed")
        if step in ("deploy", "deploy-failed"):
            self._update(result, "failed", phase=Phase.DEPLOY_FAILED, prepared=False, error=message,
                         deploy_finished=time.time())
        elif step is not None:
            self._update(result, "failed", phase=Phase.EXECUTION_FAILED, error=message)

    def v2_runner_on_unreachable(self, result):
        message = _explain_unreachable(_text(result._result.get("msg") or "unreachable"))
        self._update(result, "unreachable", phase=Phase.UNREACHABLE, error=message, unreachable=True)
