"""DockerImage environments over SSH on testbed hosts with podman (issue 17)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from ..containers import (
    BASE_IMAGE,
    WHEEL_NAME,
    free_port,
    make_wheel,
    push_user_image,
    registry,
    require_podman,
    run_containers,
    serving,
)
from .conftest import CLI, Lab, node

CONTROLLER = "10.77.0.1"  # the testbed bridge's address on the controller (testbed/lab.py)


@pytest.fixture(autouse=True)
def _podman() -> None:
    require_podman()


IMAGES = '''
import os
from unicorn_ansible import DockerImage, Experiment, Pipeline, RuntimeContext, Task

class Probe(Task):
    requirements = ["pip install --no-cache-dir http://{controller}:{port}/{wheel}-1.0-py3-none-any.whl"]

    def run(self):
        import {wheel}
        return {{"answer": {wheel}.ANSWER, "greeting": os.environ.get("GREETING"),
                 "container": os.path.exists("/run/.containerenv")}}

class Where(Task):
    def run(self):
        return {{"container": os.path.exists("/run/.containerenv"), "host": os.uname().nodename}}

def experiment(nodes):
    by = {{node.name: node for node in nodes}}
    built = DockerImage(base_image="{base}",
                        runtime_context=RuntimeContext(environment_variables={{"GREETING": "hello"}}))
    pulled = DockerImage(image="{image}")
    return (Experiment()
            .append(by["h1"], Pipeline(environment_definition=built).then(Probe(name="probe")))
            .append(by["h2"], Pipeline(environment_definition=pulled).then(Where(name="where")))
            .append(by["h3"], Pipeline(environment_definition=pulled).then(Where(name="where"))))
'''


def test_built_and_pulled_images_run_on_hosts_and_a_host_without_an_engine_is_its_error(lab: Lab) -> None:
    make_wheel(lab.root / "wheels", answer=7)
    with serving(lab.root / "wheels") as port, registry(lab.root / "registry"):
        image = push_user_image(CONTROLLER)
        (lab.root / "images.py").write_text(IMAGES.format(controller=CONTROLLER, port=port, wheel=WHEEL_NAME,
                                                          base=BASE_IMAGE, image=image))
        inventory = lab.inventory("images", host_vars={"h3": {"unicorn_container_engine": "nerdctl"}})
        done = lab.cli("run", str(lab.root / "images.py"), "-i", str(inventory), "--name", "images", check=1)
    assert "Traceback" not in done.stderr
    results = lab.results("images")
    assert node(results, "h1")["tasks"]["probe"] == [
        {"type": "Success", "value": {"answer": 7, "greeting": "hello", "container": True}}]
    # the container shares the host's network namespace (and so its name resolution of itself)
    assert node(results, "h2")["tasks"]["where"][0]["value"]["container"] is True
    error = node(results, "h3")["error"]
    assert "host h3 has no container engine" in error and "nerdctl is not installed" in error and "\n" not in error


NETUNICORN_DEFAULT = '''
import os
from netunicorn.base import Experiment, Pipeline, Task

class Where(Task):
    # a mark in the image only (where it runs as ShellExecution, the host's / is not the requirement's)
    requirements = ["if [ -e /run/.containerenv ]; then touch /made-by-a-requirement; fi"]

    def run(self):
        return {{"container": os.path.exists("/run/.containerenv"),
                 "requirement": os.path.exists("/made-by-a-requirement")}}

def experiment(nodes):
    by = {{node.name: node for node in nodes}}
    pipeline = Pipeline().then(Where(name="where"))  # netunicorn's default DockerImage()
    return Experiment().append(by["h1"], pipeline).append(by["h2"], pipeline)
'''


def test_netunicorns_default_image_runs_in_a_container_on_a_host_with_a_base_image_and_as_shell_only_when_asked(
        lab: Lab) -> None:
    (lab.root / "default.py").write_text(NETUNICORN_DEFAULT.format().replace(
        '.append(by["h2"], pipeline)', '.append(by["h2"], pipeline).append(by["h3"], pipeline)'))
    inventory = lab.inventory("default", hosts=["h1", "h2", "h3"],
                              host_vars={"h1": {"unicorn_container_base_image": BASE_IMAGE},
                                         "h2": {"unicorn_container_fallback": "shell"}})
    lab.cli("run", str(lab.root / "default.py"), "-i", str(inventory), "--name", "default", check=1)
    results = lab.results("default")
    boxed, bare, refused = node(results, "h1"), node(results, "h2"), node(results, "h3")
    # h3 asked for nothing: its requirements, written for a container, do not run on the host
    assert refused["status"] == "deploy_failed" and not refused["tasks"]
    assert refused["error"].startswith("host h3: netunicorn's default DockerImage environment has no image to run "
                                       "its requirements in: its base image python:3.")
    assert refused["error"].endswith("unicorn_container_fallback=shell to run this node's requirements on the host "
                                     "itself")
    assert boxed["tasks"]["where"][0]["value"] == {"container": True, "requirement": True}
    assert boxed["notice"] is None
    # h2 has podman but no base image was chosen, and python:<X.Y>-slim cannot be pulled here
    assert bare["tasks"]["where"][0]["value"] == {"container": False, "requirement": False}
    assert bare["notice"].startswith("node h2 runs netunicorn's default DockerImage environment as ShellExecution: "
                                     "its base image python:3.")
    assert "set the inventory variable unicorn_container_base_image" in bare["notice"]


NETWORK = '''
import socket, time, urllib.request
from unicorn_ansible import (DockerImage, Experiment, FlagValues, Pipeline, RuntimeContext, SetFlagTask,
                             ShellExecution, Task, WaitForExactFlagResultTask)

class ServeOnce(Task):
    def run(self):
        with socket.create_server(("0.0.0.0", 8000)) as server:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nfrom h1's container")
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
    ready = FlagValues(text_value="set in h3's container")
    return (Experiment()
            .append(by["h1"], Pipeline(environment_definition=served).then(ServeOnce(name="serve")))
            .append(by["h2"], Pipeline(environment_definition=ShellExecution()).then(Fetch(name="fetch")).then(
                WaitForExactFlagResultTask("ready", ready, timeout=120, name="wait")))
            .append(by["h3"], Pipeline(environment_definition=DockerImage(image="{image}")).then(
                SetFlagTask("ready", ready, name="set"))))
'''


def test_a_mapped_port_and_a_flag_reach_other_hosts_from_containers(lab: Lab) -> None:
    port = free_port()
    h1 = lab.bed.host("h1").address
    (lab.root / "network.py").write_text(NETWORK.format(image=BASE_IMAGE, address=h1, port=port))
    lab.cli("run", str(lab.root / "network.py"), "-i", str(lab.inventory("network")), "--name", "network", check=0)
    results = lab.results("network")
    assert node(results, "h1")["tasks"]["serve"] == [{"type": "Success", "value": "served"}]
    assert node(results, "h2")["tasks"]["fetch"] == [{"type": "Success", "value": "from h1's container"}]
    assert node(results, "h2")["tasks"]["wait"][0]["type"] == "Success"
    assert node(results, "h3")["tasks"]["set"][0]["type"] == "Success"


CANCEL = '''
import time
from unicorn_ansible import DockerImage, Experiment, Pipeline, Task

class Long(Task):
    def run(self):
        time.sleep(300)

def experiment(nodes):
    image = DockerImage(image="{image}")
    return Experiment().map(Pipeline(environment_definition=image).then(Long(name="long")), nodes.take(1))
'''


def _started(lab: Lab, run: str) -> bool:
    """Testbed hosts share the controller's container storage and runtime state: their containers show here."""
    return (lab.home / "runs" / run / "run.json").exists() and bool(run_containers(lab.home, run))


def test_cancel_stops_the_container_on_a_host(lab: Lab) -> None:
    (lab.root / "cancel.py").write_text(CANCEL.format(image=BASE_IMAGE))
    inventory = lab.inventory("cancel", hosts=["h2"])
    process = subprocess.Popen(CLI + ["run", str(lab.root / "cancel.py"), "-i", str(inventory), "--name", "cancel"],
                               env=lab.vars, cwd=lab.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _started(lab, "cancel") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _started(lab, "cancel"), "the container did not start on h2"
        assert "cancelled" in lab.cli("cancel", "cancel", check=0).stdout
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert run_containers(lab.home, "cancel") == []
    assert node(lab.results("cancel"), "h2")["status"] == "cancelled"
