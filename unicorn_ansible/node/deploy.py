"""Deployment of a node's environment: its requirements, run in order in a virtual environment.

The controller names the environment folder after the environment's content, so
runs with the same requirements on a host share it, and a host that already has
exactly that environment skips deployment.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from .files import write_json_atomic
from .protocol import DEPLOY_REPORT, LOGS

#: written into an environment once every requirement ran: the hash of what made it
ENVIRONMENT_MARKER = ".unicorn-environment"
#: characters of a command's output a report keeps
_TAIL = 2000


@dataclass
class Deployment:
    """One deployment: where its report, environment and logs go."""

    workdir: str
    spec: dict[str, Any]
    report: dict[str, Any]

    @property
    def node(self) -> str:
        return self.spec.get("node", "?")

    @property
    def env_dir(self) -> str:
        return os.path.normpath(os.path.join(self.workdir, self.spec.get("env_dir", "env")))

    @property
    def interpreter(self) -> str:
        return os.path.join(self.env_dir, "bin", "python")

    @property
    def logs(self) -> str:
        return os.path.join(self.workdir, LOGS, "deploy")

    def save(self, **changes: Any) -> dict[str, Any]:
        self.report.update(changes)
        write_json_atomic(os.path.join(self.workdir, DEPLOY_REPORT), self.report)
        return self.report


def _environment_key(spec: dict[str, Any]) -> str:
    text = json.dumps(
        {"commands": spec.get("commands", []), "variables": spec.get("environment_variables", {}),
         "python": sys.version, "prefix": sys.base_prefix},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _new_report(node: str) -> dict[str, Any]:
    return {"ok": False, "node": node, "python": platform.python_version(), "python_executable": sys.executable,
            "skipped": False, "commands": [], "error": None}


def deploy(workdir: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Prepare the environment described by ``spec``; return (and save) the report."""
    deployment = Deployment(os.path.abspath(workdir), spec, _new_report(spec.get("node", "?")))
    if spec.get("container") is not None:  # a DockerImage: the image's Python runs the pipeline
        from .container import deploy_container

        fields = deploy_container(spec, deployment.workdir, deployment.logs)
        if not fields.get("shell_instead"):
            return deployment.save(**fields)
        deployment.report["notice"] = fields["notice"]  # no engine here: netunicorn's default runs as shell
    wanted, here = spec.get("python"), "{}.{}".format(*sys.version_info[:2])
    if wanted and wanted != here:
        return deployment.save(error=(
            f"host {deployment.node} has Python {here} ({sys.executable}) but the controller has Python {wanted}; "
            f"pipelines are pickled for Python {wanted}: set ansible_python_interpreter to a Python {wanted} "
            "on this host"))
    if not spec.get("commands"):
        return deployment.save(ok=True, interpreter=sys.executable)
    os.makedirs(os.path.dirname(deployment.env_dir), exist_ok=True)
    with open(deployment.env_dir + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run deploying the same environment now: wait for it
        return _deploy_locked(deployment)


def _deploy_locked(deployment: Deployment) -> dict[str, Any]:
    deployment.report["environment"] = deployment.env_dir
    key = _environment_key(deployment.spec)
    marker = os.path.join(deployment.env_dir, ENVIRONMENT_MARKER)
    if not deployment.spec.get("redeploy") and _read_text(marker) == key:
        return deployment.save(ok=True, skipped=True, interpreter=deployment.interpreter)
    shutil.rmtree(deployment.env_dir, ignore_errors=True)
    shutil.rmtree(deployment.logs, ignore_errors=True)
    os.makedirs(deployment.logs, exist_ok=True)
    error = _create_environment(deployment)
    if error is None:
        error = _run_requirements(deployment)
    if error is not None:
        return deployment.save(error=error)
    with open(marker, "w") as handle:
        handle.write(key)
    return deployment.save(ok=True, interpreter=deployment.interpreter)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _create_environment(deployment: Deployment) -> str | None:
    """Create the virtual environment; the error, if that failed."""
    created = subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", deployment.env_dir],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    if created.returncode == 0:
        return None
    tail = created.stdout[-_TAIL:].decode("utf-8", "replace").strip()
    return (f"host {deployment.node}: cannot create a virtual environment with {sys.executable} -m venv "
            f"(exit {created.returncode}): {tail}; on Debian/Ubuntu install python3-venv")


def _requirement_environment(deployment: Deployment) -> dict[str, str]:
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = deployment.env_dir
    env["PATH"] = os.path.join(deployment.env_dir, "bin") + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONHOME", None)
    env.update(deployment.spec.get("environment_variables", {}))
    return env


def _run_requirements(deployment: Deployment) -> str | None:
    """Run every requirement in order with /bin/sh, stopping at the first failing one; its error."""
    commands: list[str] = list(deployment.spec.get("commands", []))
    env = _requirement_environment(deployment)
    for number, command in enumerate(commands):
        entry = _run_requirement(deployment, number, command, env)
        deployment.report["commands"].append(entry)
        if entry["rc"] != 0:
            deployment.report.update(failed_command=command, failed_rc=entry["rc"])
            return (f"requirement {number + 1}/{len(commands)} failed on {deployment.node} with exit code "
                    f"{entry['rc']}: {command}\n{entry['output_tail'].rstrip()}")
    return None


def _run_requirement(deployment: Deployment, number: int, command: str, env: dict[str, str]) -> dict[str, Any]:
    started = time.time()
    log_path = os.path.join(deployment.logs, f"{number:03d}.log")
    with open(log_path, "wb") as log:
        done = subprocess.run(
            ["/bin/sh", "-c", command], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=deployment.env_dir,  # side effects in the folder stay with the environment
        )
    with open(log_path, "rb") as log:
        log.seek(max(0, os.path.getsize(log_path) - _TAIL))
        tail = log.read().decode("utf-8", "replace")
    return {"command": command, "rc": done.returncode, "start": started, "end": time.time(),
            "log": os.path.relpath(log_path, deployment.workdir), "output_tail": tail}
