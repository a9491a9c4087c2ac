"""The role's ``unicorn_node`` action: one executor command on the host, and the results with it.

Each call of the execution play used to be two Ansible tasks per host: ``command`` (Ansible's
module, itself a Python started on the host to start ours) for the long poll, then
``unicorn_fetch`` for the outbox. This action runs the executor's command as one shell command
on the connection (no module: one Python on the host, ours), and when the answer says the
pipeline is over (or the command is ``cancel``) brings the results home in the same call:

- an outbox up to ``INLINE_LIMIT`` bytes comes back inside the answer (base64 in its JSON
  line; the executor adds it only then), is written where ``fetch`` says, and is taken out of
  the answer before Ansible sees it (callbacks and ansible-runner's events never carry it);
- a larger one is fetched by the connection's own transfer, as ``unicorn_fetch`` does;
- then, either way, the files its manifest asks for on their own (a large journal) and the
  artifacts it lists, exactly as ``unicorn_fetch`` does.

Arguments: ``command`` (``start`` or ``cancel``), ``python``, ``bundle``, ``workdir`` (as the
role's variables give them), ``timeout`` (start: seconds the call waits at most), ``fetch``
(where the outbox goes on the controller; none: nothing is fetched), ``final_statuses`` (the
statuses after which the pipeline does nothing more), ``time_limit`` (start: the pipeline's time
limit, seconds; past it, and :data:`LIMIT_GRACE` more, counted from this task's first call on this
controller, the call fails with ``unicorn_over_time``: the play stops it). The result carries the
answer's ``status``, ``already_started``, ``outbox`` and ``deployment``, ``stdout`` (the answer as JSON,
as the ``command`` module gave it), ``rc``, ``stderr``, and ``fetched`` and ``route`` when it fetched.

A command that fails because of the host or the link (its Python killed, its disk full, the SSH
connection cut) is run again, :data:`ATTEMPTS` times in all, :data:`RETRY_DELAY` seconds apart (every
command is safe to repeat: a started executor is never started twice); one that keeps failing fails
the call with ``unicorn_poll_failed`` and what the host said, never as the time limit (issue 28,
item 6), and a connection that keeps failing is Ansible's unreachable host.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text

from unicorn_ansible.engine.rundir import write_atomic
from unicorn_ansible.node.wire import DeployAnswer, ExecutorAnswer, JSONObject, WireError, last_object_line

from .fetch_action import ROUTE_CONNECTION, _host_path, controller_failure
from .fetch_action import ActionModule as FetchAction

#: the largest outbox (bytes, before base64) the executor puts inside its answer
INLINE_LIMIT = 768 * 1024
COMMANDS = ("start", "cancel")
#: the route of an outbox that came inside the answer (unicorn_fetch names the others)
ROUTE_INLINE = "inline"
#: what an Ansible action returns (Ansible gives its results no type of their own)
AnsibleResult = dict[str, Any]
#: the answer's fields the result carries besides ``stdout`` (the whole answer)
ANSWER_FIELDS = ("status", "already_started", "outbox", "deployment")
#: a command that failed because of the host or the link is run this many times in all...
ATTEMPTS = 3
#: ...this many seconds apart
RETRY_DELAY = 2.0
#: seconds past a pipeline's time limit the play waits for its executor to stop it (it does, at the limit)
LIMIT_GRACE = 5.0
#: when the first call of a task (its loop's items and Ansible's retries: one worker process) ran
#: (time.monotonic()); a task's worker ends with it
_TASK_BEGAN: dict[str, float] = {}


def answer_of(stdout: str) -> JSONObject | None:
    """The output's last line that is a JSON object (become or a terminal may add lines and "\\r\\n"),
    read by the wire's one reader of answers; None if there is none."""
    try:
        return last_object_line(stdout, "the executor's answer")
    except WireError:
        return None


def deployed_interpreter(task_vars: Mapping[str, object] | None, deployment: object) -> str | None:
    """The Python that runs ``deployment``'s executor on this host (its virtual environment's), from
    this playbook's deployment answer (``unicorn_deploy``, deploy.yml); a ``start`` run by it forks the
    executor instead of starting a second Python. None where this playbook did not deploy it
    (``prepare``, then ``start``) or the executor runs in a container."""
    registered = (task_vars or {}).get("unicorn_deploy")
    results = registered.get("results") if isinstance(registered, dict) else None
    for entry in results if isinstance(results, list) else []:
        if isinstance(entry, dict) and entry.get("unicorn_deployment") == deployment and entry.get("rc") == 0:
            try:
                source = "the deployment's answer"
                python = DeployAnswer.from_untrusted(last_object_line(to_text(entry.get("stdout") or ""), source),
                                                     source).interpreter
            except WireError:
                return None
            return python if python is not None and python.startswith("/") else None
    return None


def _answer(stdout: str) -> tuple[ExecutorAnswer | None, str | None]:
    """The executor's answer in its output, or why there is none that is one."""
    source = "the executor's answer"
    try:
        return ExecutorAnswer.from_untrusted(last_object_line(stdout, source), source), None
    except WireError as exc:
        return None, f"({exc})"


def _seconds(value: object) -> float | None:
    """A time limit as the play gives it (a number, or its text); None if none."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


class ActionModule(FetchAction):
    TRANSFERS_FILES = False  # no remote temporary folder: it would cost two more round trips per call
    _VALID_ARGS = frozenset(("command", "python", "bundle", "workdir", "timeout", "fetch", "final_statuses",
                             "time_limit"))

    def run(self, tmp: object = None, task_vars: dict[str, object] | None = None) -> AnsibleResult:
        result: AnsibleResult = super(FetchAction, self).run(tmp, task_vars)  # ActionBase's: not unicorn_fetch's
        args = self._task.args
        command, fetch = args.get("command"), args.get("fetch")
        if command not in COMMANDS or not args.get("python") or not args.get("bundle") or not args.get("workdir"):
            result.update(failed=True, msg=f"unicorn_node needs command ({' or '.join(COMMANDS)}), python, bundle "
                                           "and workdir")
            return result
        task_vars = task_vars or {}
        python = (command == "start" and deployed_interpreter(task_vars, task_vars.get("unicorn_deployment"))
                  or str(args["python"]))
        argv = [python, str(args["bundle"]), command, "--workdir", str(args["workdir"])]
        if args.get("timeout") not in (None, "") and command == "start":
            argv += ["--timeout", str(args["timeout"])]
        if fetch:
            argv += ["--inline-outbox", str(INLINE_LIMIT)]
        began = _TASK_BEGAN.setdefault(str(self._task._uuid), time.monotonic())
        # each word quoted; ~/ is $HOME, as the command module's expansion and the executor take it
        line = " ".join(_host_path(word) for word in argv)
        failures: list[str] = []
        done: dict[str, object] = {}
        stdout = stderr = ""
        for attempt in range(1, ATTEMPTS + 1):
            if attempt > 1:
                time.sleep(RETRY_DELAY)
            try:
                done = self._low_level_execute_command(line, sudoable=True)
            except AnsibleConnectionFailure as exc:
                if attempt == ATTEMPTS:  # the link, each time: the host is unreachable, as Ansible says
                    raise
                failures.append(f"the connection failed: {exc}")
                continue
            stdout, stderr = to_text(done.get("stdout", "")), to_text(done.get("stderr", ""))
            answer, refused = _answer(stdout)
            if done.get("rc") == 0 and answer is not None:
                break
            said = " ".join(part.strip() for part in (stderr, stdout, refused or "") if part.strip())
            failures.append(f"exit {done.get('rc')}: {said[:4000 // ATTEMPTS]}")
        else:
            result.update(failed=True, unicorn_poll_failed=True, rc=done.get("rc"), stderr=stderr, stdout=stdout,
                          msg=f"the executor's {command} failed on the host {ATTEMPTS} times, {RETRY_DELAY:g} s apart "
                              "(not the time limit; the pipeline may still be running there: "
                              "unicorn-ansible collect asks again): "
                              + "; ".join(failures))
            return result
        result.update(rc=done.get("rc"), stderr=stderr)
        if failures:
            result["unicorn_retried"] = failures
        inline = answer.outbox_data
        answer = dataclasses.replace(answer, outbox_data=None)  # callbacks and events never carry it
        shown = answer.to_json()
        result.update({key: shown[key] for key in ANSWER_FIELDS if key in shown}, stdout=json.dumps(shown),
                      changed=command == "cancel" or not answer.already_started)
        over = command == "cancel" or answer.status in (args.get("final_statuses") or ())
        limit = _seconds(args.get("time_limit"))
        if not over and limit is not None and time.monotonic() - began >= limit + LIMIT_GRACE:
            result.update(failed=True, unicorn_over_time=True,
                          msg=f"the pipeline was still running {limit:g} s (its time limit) after the play "
                              "began to wait for it")
            return result
        if fetch and over:
            result.update(self._fetching(lambda: self._fetch_results(answer, inline, str(fetch), task_vars),
                                         ROUTE_INLINE if inline else ROUTE_CONNECTION))
        return result

    def _fetch_results(self, answer: ExecutorAnswer, inline: str | None, dest: str,
                       task_vars: dict[str, object]) -> AnsibleResult:
        dest = self._loader.path_dwim(dest)
        src = answer.outbox or ""
        if inline is None:  # too large to come with the answer (or none): the connection's transfer
            outcome = self._fetch_all(src, dest, False, task_vars, artifacts=True)
        else:
            try:
                data = base64.b64decode(inline, validate=True)
            except (binascii.Error, TypeError, ValueError):
                return {"failed": True, "msg": "the executor's answer carried an outbox that is not base64"}
            try:
                write_atomic(Path(dest), data)  # private (0600), as every file of the run folder
            except OSError as exc:
                return {"controller_error": controller_failure(dest, exc.errno)["msg"]}
            outcome = self._fetch_rest(src, dest, task_vars)
        if outcome.get("controller_error"):  # this machine's fault, not the pipeline's: no rescue, the error named
            return {"controller_error": outcome["controller_error"]}
        if outcome.get("failed"):
            return {"failed": True, "msg": outcome.get("msg", "the results were not fetched")}
        return {"fetched": [] if outcome.get("skipped_file") else outcome.get("fetched", [dest]),
                "route": self._route, **({"artifacts": outcome["artifacts"]} if "artifacts" in outcome else {})}
