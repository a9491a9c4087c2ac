"""DockerImage environments end to end on local hosts with podman (issue 17): images built from
requirements, a user image from a local registry, the runtime context, cancel, flags, bad input."""

from __future__ import annotations

import html
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import markupsafe
import pytest

from unicorn_ansible import load_results

from ..containers import (
    BASE_IMAGE,
    WHEEL_NAME,
    dockerd,
    free_port,
    make_wheel,
    podman,
    push_user_image,
    registry,
    require_podman,
    run_containers,
    serving,
)
from .conftest import CLI, Env, node


@pytest.fixture(autouse=True)
def _podman() -> None:
    require_podman()


@pytest.fixture
def wheel_port(tmp_path: Path) -> Iterator[int]:
    make_wheel(tmp_path / "wheels")
    with serving(tmp_path / "wheels") as port:
        yield port


BUILT = '''
import os
from unicorn_ansible import DockerImage, Experiment, Pipeline, RuntimeContext, Task

class Probe(Task):
    requirements = ["sudo touch /made-by-a-requirement",
                    "pip install --no-cache-dir http://127.0.0.1:{port}/{wheel}-1.0-py3-none-any.whl"]

    def run(self):
        import {wheel}
        return {{"answer": {wheel}.ANSWER, "greeting": os.environ.get("GREETING"),
                 "container": os.path.exists("/run/.containerenv"),
                 "requirement": os.path.exists("/made-by-a-requirement")}}

def experiment(nodes):
    image = DockerImage(runtime_context=RuntimeContext(environment_variables={{"GREETING": "hello"}}))
    return Experiment().map(Pipeline(environment_definition=image).then(Probe(name="probe")), nodes)
'''


def _deploy_report(env: Env, run: str, host: str) -> dict:
    return json.loads((env.home / "runs" / run / "nodes" / host / "deploy-report.json").read_text())


def test_an_image_built_from_requirements_runs_the_pipeline_inside_and_is_reused(env: Env, wheel_port: int) -> None:
    experiment = env.write("built.py", BUILT.format(port=wheel_port, wheel=WHEEL_NAME))
    inventory = env.local_inventory(["box"], extra=f"unicorn_container_base_image={BASE_IMAGE}")
    env.cli("run", str(experiment), "-i", str(inventory), "--name", "built", "--redeploy", check=0)
    entry = node(env.results("built"), "box")
    assert entry["tasks"]["probe"] == [{"type": "Success", "value": {
        "answer": 42, "greeting": "hello", "container": True, "requirement": True}}]
    first = _deploy_report(env, "built", "box")
    assert first["container"]["engine"].endswith("podman") and not first["skipped"]
    assert [c["rc"] for c in first["commands"]] == [0, 0]
    # the same requirements again: the built image is reused, nothing is built
    env.cli("run", str(experiment), "-i", str(inventory), "--name", "built-again", check=0)
    again = _deploy_report(env, "built-again", "box")
    assert again["skipped"] and again["commands"] == [] and again["container"]["image"] == first["container"]["image"]
    assert node(env.results("built-again"), "box")["tasks"]["probe"][0]["value"]["answer"] == 42


USER_IMAGE = '''
import os
from unicorn_ansible import DockerImage, Experiment, Pipeline, Task

class Where(Task):
    def run(self):
        return open("/etc/debian_version").read().strip().split(".")[0]

def experiment(nodes):
    return Experiment().map(Pipeline(environment_definition=DockerImage(image="{image}")).then(Where(name="where")),
                            nodes)
'''


def test_a_user_image_is_pulled_from_a_registry(env: Env) -> None:
    with registry(env.root / "registry"):
        image = push_user_image("127.0.0.1")
        experiment = env.write("user.py", USER_IMAGE.format(image=image))
        env.cli("run", str(experiment), "-i", str(env.local_inventory(["puller"])), "--name", "user", check=0)
        assert podman("image", "exists", image, check=False).returncode == 0  # pulled by the run
    assert node(env.results("user"), "puller")["tasks"]["where"] == [{"type": "Success", "value": "12"}]


PORTS = '''
import socket, time, urllib.request
from unicorn_ansible import DockerImage, Experiment, Pipeline, RuntimeContext, ShellExecution, Task

class ServeOnce(Task):
    def run(self):
        with socket.create_server(("0.0.0.0", 8000)) as server:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nfrom the container")
        return "served"

class Fetch(Task):
    def run(self):
        deadline = time.time() + 60
        while True:
            try:
                return urllib.request.urlopen("http://{address}:{port}/", timeout=5).read().decode()
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)

def experiment(nodes):
    by = {{node.name: node for node in nodes}}
    served = DockerImage(image="{image}", runtime_context=RuntimeContext(ports_mapping={{8000: {port}}}))
    return (Experiment()
            .append(by["server"], Pipeline(environment_definition=served).then(ServeOnce(name="serve")))
            .append(by["client"], Pipeline(environment_definition=ShellExecution()).then(Fetch(name="fetch"))))
'''


def test_a_mapped_port_is_reached_from_another_host(env: Env) -> None:
    port = free_port()
    experiment = env.write("ports.py", PORTS.format(image=BASE_IMAGE, address="127.0.0.1", port=port))
    inventory = env.local_inventory(["server", "client"])
    env.cli("run", str(experiment), "-i", str(inventory), "--name", "ports", check=0)
    results = env.results("ports")
    assert node(results, "server")["tasks"]["serve"] == [{"type": "Success", "value": "served"}]
    assert node(results, "client")["tasks"]["fetch"] == [{"type": "Success", "value": "from the container"}]


FLAGS = '''
from unicorn_ansible import (DockerImage, Experiment, FlagValues, Pipeline, SetFlagTask, ShellExecution,
                             WaitForExactFlagResultTask)

def experiment(nodes):
    by = {{node.name: node for node in nodes}}
    setter = Pipeline(environment_definition=DockerImage(image="{image}")).then(
        SetFlagTask("ready", FlagValues(text_value="from a container"), name="set"))
    waiter = Pipeline(environment_definition=ShellExecution()).then(
        WaitForExactFlagResultTask("ready", FlagValues(text_value="from a container"), timeout=120, name="wait"))
    return Experiment().append(by["setter"], setter).append(by["waiter"], waiter)
'''


def test_a_flag_set_inside_a_container_is_awaited_by_a_shell_execution_node(env: Env) -> None:
    experiment = env.write("flags.py", FLAGS.format(image=BASE_IMAGE))
    env.cli("run", str(experiment), "-i", str(env.local_inventory(["setter", "waiter"])), "--name", "flags", check=0)
    results = env.results("flags")
    assert node(results, "waiter")["tasks"]["wait"][0]["type"] == "Success"
    assert node(results, "setter")["tasks"]["set"][0]["type"] == "Success"


CANCEL = '''
import time
from unicorn_ansible import DockerImage, Experiment, Pipeline, Task

class Long(Task):
    def run(self):
        time.sleep(300)

def experiment(nodes):
    return Experiment().map(Pipeline(environment_definition=DockerImage(image="{image}")).then(Long(name="long")),
                            nodes)
'''


def _started(env: Env, run: str, engine: str = "podman") -> bool:
    return (env.home / "runs" / run / "run.json").exists() and bool(run_containers(env.home, run, engine))


def test_cancel_stops_the_container_on_the_embedded_default(env: Env) -> None:
    experiment = env.write("cancel.py", CANCEL.format(image=BASE_IMAGE))
    process = subprocess.Popen(CLI + ["run", str(experiment), "--name", "cancel"], env=env.vars,
                               cwd=env.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _started(env, "cancel") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _started(env, "cancel"), "the container did not start"
        assert "cancelled" in env.cli("cancel", "cancel", check=0).stdout
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert run_containers(env.home, "cancel") == []
    assert node(env.results("cancel"), "localhost")["status"] == "cancelled"


BAD = '''
from unicorn_ansible import DockerImage, Experiment, Pipeline, RuntimeContext, Task

class Fine(Task):
    def run(self):
        return "fine"

class Broken(Fine):
    requirements = ["pip install --no-index no-such-package-here"]

def image(**options):
    return Pipeline(environment_definition=DockerImage(**options)).then(Fine(name="fine"))

def experiment(nodes):
    by = {{node.name: node for node in nodes}}
    busy = RuntimeContext(ports_mapping={{8000: {busy}}})
    return (Experiment()
            .append(by["missing-image"], image(image="127.0.0.1:9/no/such-image:1"))
            .append(by["failing-build"], image(base_image="{base}").then(Broken(name="broken")))
            .append(by["port-in-use"], image(image="{base}", runtime_context=busy))
            .append(by["no-engine"], image(image="{base}"))
            .append(by["good"], image(image="{base}"))
            .append(by["fallback"], image(shell_fallback=True)))
'''


def test_bad_inputs_are_one_line_node_errors_and_other_nodes_run(env: Env) -> None:
    hosts = ["missing-image", "failing-build", "port-in-use", "no-engine unicorn_container_engine=nerdctl", "good",
             "fallback unicorn_container_engine=nerdctl"]
    with socket.create_server(("0.0.0.0", 0)) as busy:
        port = busy.getsockname()[1]
        experiment = env.write("bad.py", BAD.format(base=BASE_IMAGE, busy=port))
        done = env.cli("run", str(experiment), "-i", str(env.local_inventory(hosts)), "--name", "bad", check=1)
    assert "Traceback" not in done.stderr
    assert "fallback: deployed; notice: node fallback runs netunicorn's default DockerImage" in done.stderr
    results = env.results("bad")
    errors = {entry["node"]: entry["error"] or "" for entry in results["nodes"]}
    assert "image 127.0.0.1:9/no/such-image:1 is not on the host and cannot be pulled with podman" in errors[
        "missing-image"]
    assert ("requirement 1/1 failed in the image build on failing-build with exit code 1: pip install --no-index "
            "no-such-package-here") in errors["failing-build"]
    assert "no-such-package-here" in errors["failing-build"].split("\n", 1)[1]  # the output's tail
    assert "the container did not start" in errors["port-in-use"] and str(port) in errors["port-in-use"]
    assert "has no container engine" in errors["no-engine"] and "nerdctl is not installed" in errors["no-engine"]
    for name in ("missing-image", "port-in-use", "no-engine"):
        assert "\n" not in errors[name], errors[name]
    assert node(results, "good")["tasks"]["fine"] == [{"type": "Success", "value": "fine"}]
    # netunicorn's default (shell_fallback) on a host without an engine runs as ShellExecution, with a notice
    assert node(results, "fallback")["tasks"]["fine"] == [{"type": "Success", "value": "fine"}]
    notice = _deploy_report(env, "bad", "fallback")["notice"]
    assert "runs netunicorn's default DockerImage environment as ShellExecution" in notice


NETUNICORN_DEFAULT = '''
import os
from netunicorn.base import Experiment, Pipeline, Task

class Where(Task):
    requirements = ["python3 -c 'print(\\"prepared\\")'"]

    def run(self):
        return "container" if os.path.exists("/run/.containerenv") else "host"

def experiment(nodes):
    return Experiment().map(Pipeline().then(Where(name="where")), nodes.take(3))  # netunicorn's default DockerImage()
'''


def test_netunicorns_default_image_runs_in_a_container_where_it_can_and_on_the_host_only_when_asked(
        env: Env) -> None:
    """Its requirements were written for a throwaway container: where no image can be had they run
    on the host only with unicorn_container_fallback=shell (with a notice); else the node fails and
    its error names both fixes, nothing of it run."""
    python = "{}.{}".format(*sys.version_info[:2])
    default_base = f"python:{python}-slim"
    assert podman("image", "exists", default_base, check=False).returncode != 0, (
        f"this test needs a machine where netunicorn's base image {default_base} cannot be had")
    hosts = [f"boxed unicorn_container_base_image={BASE_IMAGE}",
             "bare unicorn_container_engine=none unicorn_container_fallback=shell",
             "unpulled unicorn_container_fallback=shell", "refused", "engineless unicorn_container_engine=none"]
    env.write("default.py", NETUNICORN_DEFAULT.replace("nodes.take(3)", "nodes.take(5)"))
    done = env.cli("run", "default.py", "-i", str(env.local_inventory(hosts)), "--name", "default", check=1)
    results = json.loads(env.cli("results", "default", "--json", check=1).stdout)
    where = {entry["node"]: entry["tasks"]["where"][0]["value"] for entry in results["nodes"] if entry["tasks"]}
    assert where == {"boxed": "container", "bare": "host", "unpulled": "host"}
    errors = {entry["node"]: entry["error"] for entry in results["nodes"]}
    for name, why in (("refused", f"its base image {default_base} is not on the host and cannot be pulled with podman"),
                      ("engineless", "the host has no container engine (unicorn_container_engine is none)")):
        assert node(results, name)["status"] == "deploy_failed" and "\n" not in errors[name]
        assert errors[name].startswith(f"host {name}: netunicorn's default DockerImage environment has no image to "
                                       f"run its requirements in: {why}"), errors[name]
        assert f"unicorn_container_base_image to an image with Python {python}" in errors[name]
        assert errors[name].endswith("or set the inventory variable unicorn_container_fallback=shell to run this "
                                     "node's requirements on the host itself")
        assert not list(env.host_dir(name).glob("envs/*/bin"))  # no environment made, no requirement ran on the host
    notices = {entry["node"]: entry["notice"] for entry in results["nodes"]}
    assert notices["boxed"] is None and _deploy_report(env, "default", "boxed")["container"]["image"]
    assert notices["bare"] == ("node bare runs netunicorn's default DockerImage environment as ShellExecution: "
                               "the host has no container engine (unicorn_container_engine is none); to run it in a "
                               "container, install podman or Docker there and set the inventory variable "
                               f"unicorn_container_base_image to an image with Python {python}")
    assert notices["unpulled"].startswith("node unpulled runs netunicorn's default DockerImage environment as "
                                          f"ShellExecution: its base image {default_base} is not on the host and "
                                          "cannot be pulled with podman (")
    assert notices["unpulled"].endswith(f"set the inventory variable unicorn_container_base_image to an image "
                                        f"with Python {python}")
    # the run's output (progress and summary), the Python results object and the HTML report say it too
    for name in ("bare", "unpulled"):
        assert f"{name}  notice: {notices[name]}" in done.stdout
        assert f"deployed; notice: {notices[name][:40]}" in done.stderr
    loaded = load_results(env.home / "runs" / "default")
    assert loaded["unpulled"].notice == notices["unpulled"] and loaded["boxed"].notice is None
    assert f"notice: {html.escape(notices['bare'])}" in loaded._repr_html_()
    env.cli("report", "default", "-o", str(env.root / "report.html"), check=0)
    report = env.root.joinpath("report.html").read_text()
    assert report.count('<div class="notice">notice: node ') == 2 and str(markupsafe.escape(notices["unpulled"])) in report


DOCKER = '''
import os, time
from unicorn_ansible import DockerImage, Experiment, Pipeline, RuntimeContext, Task

class Probe(Task):
    requirements = ["sudo touch /made-by-a-requirement"]

    def run(self):
        return {{"container": os.path.exists("/.dockerenv"), "requirement": os.path.exists("/made-by-a-requirement"),
                 "greeting": os.environ.get("GREETING")}}

class Long(Task):
    def run(self):
        time.sleep(300)

def experiment(nodes):
    image = DockerImage(base_image="{base}", runtime_context=RuntimeContext(environment_variables={{"GREETING": "hi"}}))
    pipeline = Pipeline(environment_definition=image).then(Probe(name="probe"))
    return Experiment().map(pipeline.then(Long(name="long")) if {long} else pipeline, nodes)
'''


def test_docker_as_the_engine_builds_runs_and_cancel_removes_the_container(env: Env) -> None:
    with dockerd(env.root / "docker") as engine:
        inventory = env.local_inventory(["whale"], extra=f"unicorn_container_engine={engine}")
        experiment = env.write("docker.py", DOCKER.format(base=BASE_IMAGE, long=False))
        env.cli("run", str(experiment), "-i", str(inventory), "--name", "docker", check=0)
        assert node(env.results("docker"), "whale")["tasks"]["probe"] == [{"type": "Success", "value": {
            "container": True, "requirement": True, "greeting": "hi"}}]
        assert _deploy_report(env, "docker", "whale")["container"]["engine"] == str(engine)
        env.write("docker.py", DOCKER.format(base=BASE_IMAGE, long=True))
        process = subprocess.Popen(CLI + ["run", str(experiment), "-i", str(inventory), "--name", "whale-cancel"],
                                   env=env.vars, cwd=env.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while not _started(env, "whale-cancel", str(engine)) and time.monotonic() < deadline:
                time.sleep(0.3)
            assert _started(env, "whale-cancel", str(engine)), "the container did not start"
            assert "cancelled" in env.cli("cancel", "whale-cancel", check=0).stdout
            process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        assert run_containers(env.home, "whale-cancel", str(engine)) == []


LIMITED = '''
import time
from unicorn_ansible import DockerImage, Experiment, Pipeline, Task

class Long(Task):
    def run(self):
        time.sleep(300)

def experiment(nodes):
    pipeline = Pipeline(environment_definition=DockerImage(image="{image}")).then(Long(name="long"))
    return Experiment().append(nodes[0], pipeline, keep_alive_timeout_minutes=0.1)
'''


def test_a_time_limit_stops_the_pipeline_in_its_container(env: Env) -> None:
    experiment = env.write("limited.py", LIMITED.format(image=BASE_IMAGE))
    env.cli("run", str(experiment), "-i", str(env.local_inventory(["limited"])), "--name", "limited", check=1)
    entry = node(env.results("limited"), "limited")
    assert entry["status"] == "timed_out" and entry["tasks"]["long"][0]["type"] == "Failure"
    assert run_containers(env.home, "limited") == []


NETUNICORN = '''
import os
from netunicorn.base import Pipeline, Task
from netunicorn.base.environment_definitions import DockerImage, RuntimeContext
from unicorn_ansible import Experiment

class Where(Task):
    def run(self):
        return {{"container": os.path.exists("/run/.containerenv"), "variable": os.environ.get("FROM_NETUNICORN")}}

def experiment(nodes):
    context = RuntimeContext(environment_variables={{"FROM_NETUNICORN": "yes"}})
    pipeline = Pipeline(environment_definition=DockerImage(image="{image}", runtime_context=context))
    return Experiment().map(pipeline.then(Where(name="where")), nodes)
'''


def test_a_netunicorn_pipeline_with_a_named_image_runs_in_that_container(env: Env) -> None:
    pytest.importorskip("netunicorn.base")
    experiment = env.write("netunicorn_image.py", NETUNICORN.format(image=BASE_IMAGE))
    env.cli("run", str(experiment), "-i", str(env.local_inventory(["nu"])), "--name", "nu", check=0)
    assert node(env.results("nu"), "nu")["tasks"]["where"][0]["value"] == {"container": True, "variable": "yes"}
