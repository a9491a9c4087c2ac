"""Container environments (``DockerImage``): podman or Docker, driven with argument lists.

Deployment picks the host's engine (the inventory's ``unicorn_container_engine``:
``auto`` tries podman, then docker), then either makes sure the user's image is
there (pulled when missing) or builds one from the node's requirements as
netunicorn does: from a base image, one step per requirement (a leading ``sudo``
dropped), each step committed, so the error of a failing step names its
requirement and shows the tail of its output. Images built from the same base and
requirements are reused. The executor then runs inside a container of that image
with the work folder mounted at the same path and the host's process namespace
(``--pid host``), so states, cancel, time limits and results work as with
ShellExecution; a cancel also removes the container.

``spec.container`` (deploy.json's, written by the controller: a :class:`~.wire.ContainerSpec`)::

    image       the user's image, or None: build from the requirements
    base_image  the base of a built image (None: the inventory's, or python:<X.Y>-slim)
    ports       {container port: host port}   (the Docker connector's direction)
    network     the container's network (None: host, or the engine's default with ports)
    arguments   more arguments for ``run``, as a list
    cleanup     the Deployment's: False keeps the container (stopped) after the pipeline
    default_image  True for netunicorn's default ``DockerImage()``, which the user did not ask
                for: on a host without an engine, or where nobody chose a base image and
                netunicorn's ``python:<X.Y>-slim`` cannot be pulled, no image can be had, and
                the node fails with an error naming the fixes, unless
    shell_fallback  it may run as ShellExecution there (with a notice): it installs nothing
                (no requirements of its own) or the host's unicorn_container_fallback is shell

The container is named after the run's folder on the host and the node.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .digests import content_key
from .files import write_json_atomic
from .protocol import EXECUTOR_OUT, LOGS, NODE_SPEC, STATE, ExecutorStatus
from .wire import CommandRun, ContainerSpec, DeploySpec, ExecutorState, NodeSpec

#: the inventory variable's values that try the engines in order, and that turn containers off
AUTO = "auto"
NONE = "none"
ENGINES = ("podman", "docker")
#: netunicorn's base image of a built environment, by the Python the controller pickles for
DEFAULT_BASE_IMAGE = "python:{python}-slim"
#: seconds a pull of that default base may take before netunicorn's default runs as ShellExecution
#: (a lab whose firewall drops the registry's packets must not hang every deployment)
DEFAULT_BASE_PULL_TIMEOUT = 300
#: built images are named after what made them
BUILT_IMAGE = "unicorn-ansible-env"
#: characters of a command's output an error or report keeps
_TAIL = 2000
#: seconds an engine command may take (pulls and builds are the requirements' own)
_QUICK = 120
#: seconds ``start`` waits for the container's executor to write its first state
START_TIMEOUT = 120.0


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _engine(engine: str, *args: str, timeout: float | None = _QUICK) -> subprocess.CompletedProcess[str]:
    """Run ``engine args``; output and errors together, as text."""
    try:
        return subprocess.run([engine, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else ""
        return subprocess.CompletedProcess([engine, *args], 124, output + f"\ntimed out after {timeout:.0f} s")


def find_engine(wanted: str | None) -> tuple[str | None, str]:
    """(the engine's path, ""), or (None, why there is none): ``auto`` (or nothing) is the first
    of podman and docker that answers; ``none``: no engine; any other value is that command."""
    if wanted == NONE:
        return None, "unicorn_container_engine is none"
    candidates = ENGINES if wanted in (None, "", AUTO) else (str(wanted),)
    problems = []
    for candidate in candidates:
        path = shutil.which(candidate)
        if path is None:
            problems.append(f"{candidate} is not installed")
            continue
        answer = _engine(path, "ps", "--quiet", timeout=30)
        if answer.returncode == 0:
            return path, ""
        problems.append(f"{candidate} does not answer ({_last_line(answer.stdout)})")
    return None, "; ".join(problems)


def image_key(base: str, commands: list[str], python: str) -> str:
    """The tag of an image built from ``base`` with ``commands`` for ``python``."""
    return content_key({"base": base, "commands": commands, "python": python})


def build_step(command: str) -> str:
    """A requirement as netunicorn's image runs it: without a leading ``sudo`` (builds run as root)."""
    stripped = command.lstrip()
    return stripped[len("sudo "):] if stripped.startswith("sudo ") else command


def has_image(engine: str, image: str) -> bool:
    return _engine(engine, "image", "inspect", "--format", "{{.Id}}", image).returncode == 0


def _pull_failure(engine: str, image: str, timeout: float | None = None) -> str | None:
    """Pull ``image`` unless the host has it; the last line of the engine's answer if it cannot be had."""
    if has_image(engine, image):
        return None
    pulled = _engine(engine, "pull", image, timeout=timeout)
    return None if pulled.returncode == 0 else _last_line(pulled.stdout)


def ensure_image(engine: str, image: str, node: str, fix: str = "") -> str | None:
    """Pull ``image`` unless the host has it; the error, if it cannot be had, ending with its fix
    (``fix``, else: bring the image onto the host)."""
    failure = _pull_failure(engine, image)
    if failure is None:
        return None
    name = os.path.basename(engine)
    fix = fix or (f"load it onto the host ({name} load -i FILE, or {name} pull from a registry the host reaches) "
                  "or name an image the host has")
    return f"host {node}: image {image} is not on the host and cannot be pulled with {name}: {failure}; {fix}"


def image_python(engine: str, image: str, wanted: str | None, node: str) -> str | None:
    """The error if ``image`` has no ``python3`` of the controller's version (the pipeline is pickled for it)."""
    probe = _engine(engine, "run", "--rm", "--network", "none", "--entrypoint", "python3", image, "-c",
                    "import sys; print('%d.%d' % sys.version_info[:2])")
    if probe.returncode != 0:
        return (f"host {node}: image {image} cannot run python3, which the executor needs: "
                f"{_last_line(probe.stdout)}; use an image with python3 {wanted or ''} on its PATH".replace("  ", " "))
    found = _last_line(probe.stdout)
    if wanted and found != wanted:
        return (f"host {node}: image {image} has Python {found} but the controller has Python {wanted}; "
                f"pipelines are pickled for Python {wanted}: use an image with Python {wanted}")
    return None


def _step_entry(command: str, rc: int, started: float, log_path: str, workdir: str) -> CommandRun:
    from .deploy import output_tail

    return CommandRun(command=command, rc=rc, start=started, end=time.time(), log=os.path.relpath(log_path, workdir),
                      output_tail=output_tail(log_path))


def _environment_args(variables: Mapping[str, str]) -> list[str]:
    return [argument for key, value in variables.items() for argument in ("--env", f"{key}={value}")]


class Build:
    """Building a node's image from its requirements, one committed step per requirement."""

    def __init__(self, engine: str, spec: DeploySpec, container: ContainerSpec, workdir: str, logs: str) -> None:
        self.engine, self.spec, self.workdir, self.logs = engine, spec, workdir, logs
        self.node = spec.node
        self.commands: list[str] = list(spec.commands)
        self.base = container.base_image or DEFAULT_BASE_IMAGE.format(python=spec.python or "3")
        self.key = image_key(self.base, self.commands, str(spec.python))
        self.tag = f"{BUILT_IMAGE}:{self.key}"
        self.entries: list[CommandRun] = []
        self.reused = False
        self.build_id = _safe_name(f"{self.node}-{os.getpid()}")

    def run(self) -> str | None:
        """Build the image (or find it built); the error, if that failed. Builds of one image on
        a host wait for each other."""
        envs = os.path.dirname(os.path.normpath(os.path.join(self.workdir, self.spec.env_dir)))
        os.makedirs(envs, exist_ok=True)
        with open(os.path.join(envs, f"image-{self.key}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._build_locked()

    def _build_locked(self) -> str | None:
        if not self.spec.redeploy and has_image(self.engine, self.tag):
            self.reused = True
            return None
        error = ensure_image(self.engine, self.base, self.node, fix=(
            "it is the base of the environment built from the requirements: set DockerImage(base_image=...) or the "
            "inventory variable unicorn_container_base_image to an image with Python "
            f"{self.spec.python or '3'} that the host has"))
        if error:
            return error
        shutil.rmtree(self.logs, ignore_errors=True)
        os.makedirs(self.logs, exist_ok=True)
        # names of this build's own (hosts may share an engine's storage, as the testbed's do)
        current, partial = self.base, f"{self.tag}-partial-{self.build_id}"
        for number, command in enumerate(self.commands):
            error = self._step(number, command, current, partial)
            if error:
                return error
            current = partial
        tagged = _engine(self.engine, "tag", current, self.tag)
        _engine(self.engine, "rmi", partial)
        if tagged.returncode != 0:
            return f"host {self.node}: cannot tag the built image {self.tag}: {_last_line(tagged.stdout)}"
        return None

    def _step(self, number: int, command: str, image: str, into: str) -> str | None:
        name = f"unicorn-build-{self.key}-{self.build_id}-{number}"
        _engine(self.engine, "rm", "--force", name)
        log_path, started = os.path.join(self.logs, f"{number:03d}.log"), time.time()
        variables = self.spec.environment_variables
        with open(log_path, "wb") as log:
            done = subprocess.run(
                [self.engine, "run", "--name", name, "--network", "host", *_environment_args(variables),
                 "--entrypoint", "/bin/sh", image, "-c", build_step(command)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        entry = _step_entry(command, done.returncode, started, log_path, self.workdir)
        self.entries.append(entry)
        committed = _engine(self.engine, "commit", name, into) if done.returncode == 0 else None
        _engine(self.engine, "rm", "--force", name)
        if done.returncode != 0:
            return (f"requirement {number + 1}/{len(self.commands)} failed in the image build on {self.node} "
                    f"with exit code {done.returncode}: {command}\n{(entry.output_tail or '').rstrip()}")
        if committed is not None and committed.returncode != 0:
            return f"host {self.node}: cannot commit the image build's step {number + 1}: {_last_line(committed.stdout)}"
        return None


def _safe_name(text: str) -> str:
    """``text`` as a part of a container's or an image tag's name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)


def container_name(workdir: str, node: str) -> str:
    """The executor's container: one per run (the work folder's name is the run's) and node."""
    return "unicorn-" + _safe_name(f"{os.path.basename(workdir)}-{node}")


@dataclass(frozen=True)
class Built:
    """What preparing a node's container ended with: its container and the build's steps, or the
    error; or, with a ``notice``, that the node runs as ShellExecution instead."""

    error: str | None = None
    container: ContainerSpec | None = None
    commands: tuple[CommandRun, ...] = ()
    reused: bool = False
    notice: str | None = None


def as_shell(node: str, why: str) -> Built:
    """Netunicorn's default ``DockerImage()`` run as ShellExecution, and the notice saying why."""
    return Built(notice=f"node {node} runs netunicorn's default DockerImage environment as ShellExecution: {why}")


def default_base_missing(engine: str, spec: DeploySpec) -> str | None:
    """Why netunicorn's default base image (nobody chose one) cannot be had on this host; None if it can.
    Labs often reach no public registry: the pipeline then runs as ShellExecution instead of failing."""
    python = spec.python or "3"
    base = DEFAULT_BASE_IMAGE.format(python=python)
    failure = _pull_failure(engine, base, DEFAULT_BASE_PULL_TIMEOUT)
    if failure is None:
        return None
    return (f"its base image {base} is not on the host and cannot be pulled with {os.path.basename(engine)} "
            f"({failure}); to run it in a container, set the inventory variable "
            f"unicorn_container_base_image to an image with Python {python}")


def no_default_image(node: str, why: str) -> Built:
    """netunicorn's default ``DockerImage()`` with requirements where no image can be had: the node
    fails (its requirements were written for a throwaway container, not for this host) and the
    error names both fixes."""
    return Built(error=f"host {node}: netunicorn's default DockerImage environment has no image to run its "
                       f"requirements in: {why}; or set the inventory variable unicorn_container_fallback=shell "
                       "to run this node's requirements on the host itself")


def _without_image(node: str, container: ContainerSpec, why: str) -> Built:
    """netunicorn's default where no image can be had: as ShellExecution if allowed, else the node's error."""
    return as_shell(node, why) if container.shell_fallback else no_default_image(node, why)


def deploy_container(spec: DeploySpec, workdir: str, logs: str) -> Built:
    """Prepare the node's container image: its container (engine, name, image) and the build's steps."""
    node, container = spec.node, spec.container or ContainerSpec()
    engine, missing = find_engine(container.engine)
    default = container.default_image or container.shell_fallback
    if engine is None and default:
        return _without_image(node, container, (
            f"the host has no container engine ({missing}); to run it in a container, install podman or Docker "
            f"there and set the inventory variable unicorn_container_base_image to an image with Python "
            f"{spec.python or '3'}"))
    if engine is None:
        return Built(error=f"host {node} has no container engine for its DockerImage environment: {missing}; "
                           "install podman or Docker there, or set the inventory variable unicorn_container_engine")
    if default and not container.base_image:
        unusable = default_base_missing(engine, spec)
        if unusable:
            return _without_image(node, container, unusable)
    entries: list[CommandRun] = []
    image, reused = container.image, False
    if image:
        error = ensure_image(engine, image, node)
    else:
        build = Build(engine, spec, container, workdir, logs)
        error, image, entries, reused = build.run(), build.tag, build.entries, build.reused
    if error is None:
        error = image_python(engine, image, spec.python, node)
    container = dataclasses.replace(container, engine=engine, name=container_name(workdir, node), image=image)
    return Built(error=error, container=container, commands=tuple(entries), reused=reused)


def run_command(container: ContainerSpec, workdir: str, command: list[str]) -> list[str]:
    """The engine's command line that runs the executor (``command + run``) in the node's container."""
    spec = NodeSpec.read(os.path.join(workdir, NODE_SPEC)) or NodeSpec()
    kept = not container.cleanup  # Deployment(cleanup=False): kept, stopped, for inspection
    argv = [container.engine or "podman", "run", *([] if kept else ["--rm"]), "--name", container.name or "unicorn", "--pid", "host",
            "--volume", f"{workdir}:{workdir}", "--workdir", workdir]
    endpoint = (spec.flags.endpoint if spec.flags else None) or ""
    if endpoint.startswith("unix:"):  # the run's flag store on this machine: its socket, mounted
        argv += ["--volume", f"{endpoint[len('unix:'):]}:{endpoint[len('unix:'):]}"]
    if container.network:
        argv += ["--network", container.network]
    elif not container.ports:  # the host's network, as ShellExecution has it (and the flag tunnel on its loopback)
        argv += ["--network", "host"]
    for inside, outside in container.ports.items():
        argv += ["--publish", f"{outside}:{inside}"]
    argv += _environment_args(spec.environment_variables)
    argv += list(container.arguments)
    return argv + ["--entrypoint", "python3", container.image or "", *command, "run", "--workdir", workdir]


def await_start(workdir: str, process: subprocess.Popen[bytes], node: str, timeout: float = START_TIMEOUT) -> None:
    """Wait until the executor in the container wrote its first state; if the engine gave up
    first (a port in use, a bad argument), record that as the node's failed state."""
    state_path, deadline = os.path.join(workdir, STATE), time.monotonic() + timeout
    while time.monotonic() < deadline and not os.path.exists(state_path):
        if process.poll() is not None:
            break
        time.sleep(0.05)
    if os.path.exists(state_path) or process.poll() in (None, 0):
        return
    try:
        with open(os.path.join(workdir, LOGS, EXECUTOR_OUT), errors="replace") as out:
            reason = _last_line(out.read()[-_TAIL:])
    except OSError:
        reason = "no output"
    write_json_atomic(state_path, ExecutorState(
        status=ExecutorStatus.FAILED, finished=time.time(), done=0, total=0,
        error=f"host {node}: the container did not start: {reason}").to_json())


def remove(container: ContainerSpec) -> None:
    """Stop and remove the node's container (gone already when its executor ended); one its
    Deployment keeps (``cleanup=False``) is stopped only."""
    if container.engine and container.name:
        _engine(container.engine, *(("rm", "--force") if container.cleanup else ("stop",)), container.name)
