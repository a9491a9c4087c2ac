"""The role's ``unicorn_fetch`` action: fetch the executor's outbox from the host as it is: the connection's own transfer, nothing else.

Ansible's ``fetch`` runs the ``stat`` module on the host first (one more round trip and a
SHA-1 pass over the file there), then hashes the fetched copy twice (SHA-1 and MD5), even with
``validate_checksum: false``. Results can be hundreds of megabytes; SSH already protects
the transfer, and the controller checks every record it reads. With ``become`` the
connecting user cannot read the file: the become user copies it into a folder that only
the connecting user can enter (made by it with ``mktemp -d``, 0700), as a file of the
connecting user's, which the same transfer fetches; the folder is removed afterwards.
Where the become user cannot write there (a become user other than root), this hands over
to ``ansible.builtin.fetch`` (base64 through ``slurp``: slow for large files).

When the outbox (a tar) says in its first member, ``outbox.json``, that a large journal stays
out of it, the journal is fetched on its own next to it: a large result is not copied into
the archive on the host and out of it on the controller.

With ``artifacts: true``, the artifacts the outbox lists (``artifacts.json``) come next, one
file at a time, streamed to disk by the connection: each checked, placed, capped and indexed by
unicorn_ansible/results/artifacts.py; a file already home unchanged is not fetched again. A
file that cannot be fetched is listed as left on the host; the task does not fail for it.

Arguments: ``src`` (path on the host), ``dest`` (path on the controller), ``fail_on_missing``
(default true), ``artifacts`` (default false). Files are fetched to ``<name>.part-<pid>-<random>``
(a name of this fetch's own: another fetch of the same run, a cancel beside the run's last call,
never shares it) and renamed, so each is whole or absent.
"""

from __future__ import annotations

import errno
import os
import posixpath
import secrets
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from unicorn_ansible.ansible.routes import FetchRoute
from unicorn_ansible.results.artifacts import ArtifactFetch
from unicorn_ansible.results.outbox import separate_files

#: what a fetch step answers (Ansible's result dict: failed, msg, changed, ...)
Outcome = dict[str, Any]
#: the task's variables, as Ansible gives them to an action
TaskVars = dict[str, Any] | None

MISSING_RC = 3  # the become user's copy command: the file is not there
# how the files travelled (the result's ``route``; each connection kind names its own: connections/)
ROUTE_CONNECTION, ROUTE_HANDOVER, ROUTE_ANSIBLE = (FetchRoute.CONNECTION.value, FetchRoute.HANDOVER.value,
                                                   FetchRoute.ANSIBLE.value)


class ActionModule(ActionBase):  # type: ignore[misc]  # Ansible ships no types
    TRANSFERS_FILES = False  # no remote temporary folder: it would cost two more round trips per call
    _VALID_ARGS = frozenset(("src", "dest", "fail_on_missing", "artifacts"))

    def run(self, tmp: Any = None, task_vars: TaskVars = None) -> Outcome:
        result: Outcome = super().run(tmp, task_vars)
        src, dest = self._task.args.get("src"), self._task.args.get("dest")
        if not src or not dest:
            result.update(failed=True, msg="unicorn_fetch needs src and dest")
            return result
        dest = self._loader.path_dwim(dest)
        fail_on_missing = boolean(self._task.args.get("fail_on_missing", True), strict=False)
        result.update(self._fetching(lambda: self._fetch_all(src, dest, fail_on_missing, task_vars)))
        return result

    def _fetching(self, fetch: Callable[[], Outcome], route: str = ROUTE_CONNECTION) -> Outcome:
        """``fetch()``'s outcome (``route``: how the files travel, unless it finds otherwise); the
        private folder a become hand-over makes on the host is removed afterwards."""
        self._handover: str | None = None  # with become: the connecting user's private folder
        self._route = route
        try:
            return fetch()
        finally:
            if self._handover:
                self._low_level_execute_command(f"rm -rf -- {shlex.quote(self._handover)}", sudoable=False)

    def _fetch_all(self, src: str, dest: str, fail_on_missing: bool, task_vars: TaskVars,
                   artifacts: bool | None = None) -> Outcome:
        """The outbox, then the files its manifest asks for on their own, then (``artifacts``) its artifacts."""
        outcome = self._fetch(src, dest, fail_on_missing, task_vars)
        if outcome.get("failed") or outcome.get("skipped_file"):
            return dict(outcome)
        if artifacts is None:
            artifacts = boolean(self._task.args.get("artifacts", False), strict=False)
        return self._fetch_rest(src, dest, task_vars, artifacts)

    def _fetch_rest(self, src: str, dest: str, task_vars: TaskVars, artifacts: bool = True) -> Outcome:
        """With the outbox home at ``dest`` (from ``src`` on the host): the files its manifest asks
        for on their own, then (``artifacts``) the artifacts it lists."""
        result: Outcome = {}
        fetched = [dest]
        for name in separate_files(dest):
            extra = os.path.join(os.path.dirname(dest), name)
            more = self._fetch(posixpath.join(posixpath.dirname(src), name), extra, True, task_vars)
            if more.get("failed"):
                result.update(more)
                return result
            fetched.append(extra)
        result.update(changed=True, dest=dest, file=src, fetched=fetched, route=self._route)
        if artifacts:
            result["artifacts"] = self._fetch_artifacts(src, dest, task_vars)
        return result

    def _home_expanded(self, path: str) -> str:
        """``~/...`` with the home the node side uses ($HOME, like os.path.expanduser), not the
        passwd database's (Ansible's _remote_expand_user asks for ~user): one work folder for every step."""
        if not path.startswith("~/"):
            return path
        home = self._low_level_execute_command(self._connection._shell.expand_user("~"), sudoable=False)
        lines = to_text(home.get("stdout", "")).strip().splitlines()
        return self._connection._shell.join_path(lines[-1], path[2:]) if lines else path

    def _fetch_artifacts(self, src: str, dest: str, task_vars: TaskVars) -> Outcome:
        """Bring home the artifacts the outbox at ``dest`` lists; what was fetched and what was left."""
        plan = ArtifactFetch.for_outbox(Path(dest))
        fetched = 0
        try:
            for job in plan.jobs():
                remote = posixpath.join(posixpath.dirname(src), job.offer.transfer or "")
                outcome = self._fetch(remote, str(job.part), True, task_vars)
                if outcome.get("failed") or outcome.get("skipped_file"):
                    plan.failed(job, to_text(outcome.get("msg", "not fetched")))
                else:
                    plan.fetched(job)
                    fetched += 1
        finally:
            plan.save()
        if plan.messages:
            self._display.warning(f"{(task_vars or {}).get('inventory_hostname')}: " + "; ".join(plan.messages[:20]))
        return {"fetched": fetched, "messages": plan.messages}

    def _fetch(self, src: str, dest: str, fail_on_missing: bool, task_vars: TaskVars) -> Outcome:
        try:
            return self._fetch_to(src, dest, fail_on_missing, task_vars)
        except OSError as exc:  # this machine's own file system (making the folder, the rename)
            return controller_failure(dest, exc.errno)

    def _fetch_to(self, src: str, dest: str, fail_on_missing: bool, task_vars: TaskVars) -> Outcome:
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        part = f"{dest}.part-{os.getpid()}-{secrets.token_hex(6)}"
        if not self._connection.become:
            source = self._home_expanded(src)
            outcome = self._transfer(source, src, part, fail_on_missing)
        else:
            handed = self._hand_over(src, fail_on_missing)
            if handed is None:
                self._route = ROUTE_ANSIBLE
                outcome = self._fetch_with_ansible(src, part, fail_on_missing, task_vars)
            elif "path" in handed:
                self._route = ROUTE_HANDOVER
                outcome = self._transfer(handed["path"], src, part, fail_on_missing)
            else:
                outcome = handed
        if outcome:
            if os.path.exists(part):
                os.unlink(part)
            return outcome
        os.replace(part, dest)
        return {}

    def _transfer(self, source: str, src: str, part: str, fail_on_missing: bool) -> Outcome:
        """The connection's own transfer of ``source`` to ``part``; an outcome if it failed."""
        try:
            self._connection.fetch_file(source, part)
        except AnsibleConnectionFailure:
            raise
        except AnsibleError as exc:  # most often: the file is not there
            local = _local_write_errno(exc)  # or this machine could not write it (its disk is full)
            if os.path.exists(part):
                os.unlink(part)
            if local is not None:
                return controller_failure(part, local)
            outcome = {"changed": False, "file": src, "msg": f"{src} was not fetched: {to_text(exc)}"}
            outcome["failed" if fail_on_missing else "skipped_file"] = True
            return outcome
        return {}

    def _fetch_with_ansible(self, src: str, part: str, fail_on_missing: bool, task_vars: TaskVars) -> Outcome:
        """``ansible.builtin.fetch`` (through ``slurp`` with become); an outcome if it failed."""
        fetch = self._shared_loader_obj.action_loader.get(
            "ansible.builtin.fetch", task=self._task.copy(), connection=self._connection,
            play_context=self._play_context, loader=self._loader, templar=self._templar,
            shared_loader_obj=self._shared_loader_obj)
        fetch._task.args = {"src": src, "dest": part, "flat": True, "fail_on_missing": fail_on_missing,
                            "validate_checksum": False}
        outcome: Outcome = fetch.run(task_vars=task_vars)
        if outcome.get("failed"):
            return outcome
        if not os.path.exists(part):
            return {"skipped_file": True, "msg": outcome.get("msg", f"{src} was not fetched")}
        return {}

    def _hand_over(self, src: str, fail_on_missing: bool) -> Outcome | None:
        """With become: the become user copies ``src`` into the connecting user's private folder,
        as a file of the connecting user's. Its path, an outcome for a missing file, or None
        where that cannot be done (then Ansible's own fetch is used)."""
        if self._handover is None:
            made = self._low_level_execute_command(
                'umask 077 && printf "%s %s\\n" "$(id -u)" "$(mktemp -d)"', sudoable=False)
            words = to_text(made.get("stdout", "")).split()
            if made.get("rc") != 0 or len(words) != 2 or not words[0].isdigit():
                return None
            self._handover_uid, self._handover = words
        copied = self._low_level_execute_command(_copy_command(src, self._handover, self._handover_uid))
        if copied.get("rc") == MISSING_RC:
            outcome = {"changed": False, "file": src, "msg": f"{src} was not fetched: it does not exist"}
            outcome["failed" if fail_on_missing else "skipped_file"] = True
            return outcome
        path = to_text(copied.get("stdout", "")).strip().splitlines()
        if copied.get("rc") != 0 or not path or not path[-1].startswith(self._handover + "/"):
            return None
        return {"path": path[-1]}


#: errors of this machine's own file system: a fetch that meets one is no host's fault
LOCAL_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def controller_failure(path: str, number: int | None) -> Outcome:
    """A fetch this machine could not write: failed, with ``controller_error`` naming the file and why
    (the results already home are kept: each file is renamed into place only when whole)."""
    reason = os.strerror(number) if number else "an I/O error"
    message = (f"the controller could not write {path.split('.part-')[0]}: {reason}; what was fetched before is "
               "kept; free space on the controller (df -h), then fetch again with unicorn-ansible collect")
    return {"failed": True, "changed": False, "controller_error": message, "msg": message}


def _local_write_errno(exc: BaseException) -> int | None:
    """The errno of this machine's own write failure behind a transfer's error (the exception's
    causes; an ssh transfer's message names it as ``strerror`` says it), if it is one."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in LOCAL_WRITE_ERRNOS:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    text = to_text(exc)
    return next((number for number in LOCAL_WRITE_ERRNOS if os.strerror(number) in text), None)


def _host_path(path: str) -> str:
    """``path`` for the host's shell: quoted, with ``~/`` as the become user's ``$HOME``."""
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + (shlex.quote(path[1:]) if len(path) > 1 else "")
    return shlex.quote(path)


def _copy_command(src: str, folder: str, uid: str) -> str:
    """Run by the become user: copy ``src`` to a new file in ``folder``, give it to ``uid``, print its path."""
    return (f"umask 077 && src={_host_path(src)} && {{ [ -f \"$src\" ] || exit {MISSING_RC}; }} && "
            f"to=$(mktemp {shlex.quote(folder + '/fetch.XXXXXX')}) && cat -- \"$src\" > \"$to\" && "
            f"chown {uid} \"$to\" && printf '%s\\n' \"$to\"")
