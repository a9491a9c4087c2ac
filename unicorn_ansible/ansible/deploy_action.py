"""The role's ``unicorn_deploy`` action: ship a deployment's executor bundle and run it, in one call.

Ansible's ``script`` action makes a temporary folder on the host, copies the script into it
(a transfer of its own), marks it executable, runs it and removes the folder: five round trips
to the host, each an SSH exchange (on the local connection, a shell each). The executor keeps
its bundle in the work folder anyway (start and cancel run it from there), so this action
sends the bundle on the standard input of the one shell command that writes it there and runs
it: one round trip. That needs the connection's pipelining (the generated settings turn it on;
SSH, local and Mitogen have it); without it this hands over to ``ansible.builtin.script``.

Arguments: ``bundle`` (the node's part of its bundle on the controller, ``files/nodes/<executor>/NAME.tail``;
the part every node shares is the project's ``files/NAME.head``, and the zipapp the host gets is head +
tail: the compiler keeps one head per run, not one copy per node), ``python``, ``workdir`` (as the role's
variables give them), ``name`` (the bundle's name in the work folder), ``container_engine`` and
``container_base_image`` (the role's ``unicorn_container_*``), ``start`` (whether the executor
starts the pipeline right after a successful deployment). The result is ``script``'s: ``rc``,
``stdout``, ``stderr``, ``stdout_lines``, ``stderr_lines``; it fails when ``rc`` is not 0, and is
changed unless the executor's report says the environment was already there (``"skipped": true``);
``unicorn_error`` is the deployment's error as its answer says it (the role's message for a failed
deployment: the answer read once, here, by the wire's reader).
Each argument costs the play a template in the worker, so the executor's command line is built
here, not in the role.
"""

from __future__ import annotations

import os
import shlex
import tempfile

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from unicorn_ansible.node.wire import DeployAnswer, WireError, last_object_line

from .fetch_action import _host_path
from .node_action import AnsibleResult


def deploy_argv(workdir: str, container_engine: str, container_base_image: str, start: bool) -> list[str]:
    """The executor's arguments after the bundle for one deployment."""
    return (["deploy", "--workdir", workdir, "--container-engine", container_engine,
             "--container-base-image", container_base_image] + (["--start"] if start else []))


def ship_and_run(python: str, workdir: str, name: str, argv: list[str]) -> str:
    """The host's shell command: the bundle on stdin into ``workdir/name`` (whole or not at all),
    then ``python workdir/name argv...``; ``~/`` in ``workdir`` is ``$HOME``, as the executor takes it."""
    folder = _host_path(workdir)
    target = f"{folder}/{shlex.quote(name)}"
    part = f"{folder}/{shlex.quote('.' + name)}.part$$"
    return (f"umask 077 && mkdir -p -- {folder} && cat > {part} && mv -f -- {part} {target} && "
            f"{_host_path(python)} {target} " + " ".join(_host_path(word) for word in argv))


class ActionModule(ActionBase):  # type: ignore[misc]  # (Ansible's classes carry no types)
    TRANSFERS_FILES = False  # no remote temporary folder: the bundle goes straight to the work folder
    _VALID_ARGS = frozenset(("bundle", "python", "workdir", "name", "container_engine", "container_base_image",
                             "start"))

    def run(self, tmp: object = None, task_vars: dict[str, object] | None = None) -> AnsibleResult:
        result: AnsibleResult = super().run(tmp, task_vars)
        args = self._task.args
        bundle, python, workdir, name = (args.get(key) for key in ("bundle", "python", "workdir", "name"))
        if not bundle or not python or not workdir or not name:
            result.update(failed=True, msg="unicorn_deploy needs bundle, python, workdir and name")
            return result
        argv = deploy_argv(str(workdir), str(args.get("container_engine") or "auto"),
                           str(args.get("container_base_image") or ""), boolean(args.get("start") or False))
        try:
            data = whole_bundle(self._loader.path_dwim(f"files/{name}.head"), self._loader.path_dwim(str(bundle)))
        except OSError as exc:
            result.update(failed=True, msg=f"cannot read the node's bundle: {exc}")
            return result
        if not self._connection.is_pipelining_enabled(False):
            return deployment_outcome(self._with_script(data, str(name), str(python), argv, task_vars))
        done = self._low_level_execute_command(ship_and_run(str(python), str(workdir), str(name), argv),
                                               sudoable=True, in_data=data)
        stdout, stderr = to_text(done.get("stdout", "")), to_text(done.get("stderr", ""))
        result.update(rc=done.get("rc"), stdout=stdout, stderr=stderr, stdout_lines=stdout.splitlines(),
                      stderr_lines=stderr.splitlines())
        return deployment_outcome(result)

    def _with_script(self, data: bytes, name: str, python: str, argv: list[str],
                     task_vars: dict[str, object] | None) -> AnsibleResult:
        """No pipelining on this connection: Ansible's script action ships and runs the bundle
        (put together in a private temporary folder of the controller for it)."""
        with tempfile.TemporaryDirectory(prefix="unicorn-bundle-") as scratch:
            source = os.path.join(scratch, name)
            with open(source, "wb") as handle:
                handle.write(data)
            task = self._task.copy()
            task.args = {"cmd": " ".join(shlex.quote(word) for word in [source, *argv]), "executable": python}
            script = self._shared_loader_obj.action_loader.get(
                "ansible.builtin.script", task=task, connection=self._connection, play_context=self._play_context,
                loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
            done: AnsibleResult = script.run(task_vars=task_vars)
            return done


def whole_bundle(head: str, tail: str) -> bytes:
    """A node's zipapp: the bundle's part every node shares, then the node's own part."""
    with open(head, "rb") as first, open(tail, "rb") as second:
        return first.read() + second.read()


def deployment_answer(stdout: str) -> DeployAnswer | None:
    """The deployment's answer (the output's last JSON line); None if there is none that is one."""
    try:
        return DeployAnswer.from_untrusted(last_object_line(stdout, "the deployment's answer"),
                                           "the deployment's answer")
    except WireError:
        return None


def deployment_outcome(result: AnsibleResult) -> AnsibleResult:
    """Failed unless the executor exited 0; changed unless its report says the environment was
    already built (what the role's changed_when and failed_when said, decided here: no template)."""
    answer = deployment_answer(to_text(result.get("stdout") or ""))
    if answer is not None and answer.error is not None:
        result["unicorn_error"] = answer.error
    if result.get("rc") != 0:
        result.update(failed=True, changed=False, msg=result.get("msg") or "non-zero return code")
    else:
        result["changed"] = not (answer is not None and answer.skipped is True)
    return result
