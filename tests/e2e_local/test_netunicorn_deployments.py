"""What netunicorn's notebooks set on each deployment after ``map`` runs as they set it (issue 24):
video_watchers' ``deployment.environment_definition = DockerImage(image=...)``, external_experiment's
``keep_alive_timeout_minutes`` and image, a deployment's own environment variables, ``cleanup``;
what cannot run here is refused in one line. The image is the tests' local base image."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from netunicorn.base import DockerImage, Experiment, ExperimentStatus, Pipeline, ShellExecution, Task

from unicorn_ansible import RemoteClient, RemoteClientException

from ..containers import BASE_IMAGE, podman, require_podman, run_containers
from .conftest import Env

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # as a notebook's classes travel


class Where(Task):
    # netunicorn runs no requirement in a given image: this one must not run anywhere
    requirements = ["touch /tmp/unicorn-issue24-requirement-ran"]

    def run(self):
        return {"container": os.path.exists("/run/.containerenv"), "role": os.environ.get("ROLE")}


@pytest.fixture(autouse=True)
def _podman() -> None:
    require_podman()


def _client(env: Env) -> RemoteClient:
    return RemoteClient(inventory=str(env.local_inventory(["h1", "h2"])))


def _finished(client: RemoteClient, name: str) -> object:
    for _ in range(600):
        info = client.get_experiment_status(name)
        if info.status == ExperimentStatus.READY:
            client.start_execution(name)
        elif info.status == ExperimentStatus.FINISHED:
            return info
        time.sleep(0.5)
    raise AssertionError(f"{name} did not finish: {client.get_experiment_status(name)}")


def test_video_watchers_loop_runs_each_deployment_in_its_image_with_its_variables(env: Env) -> None:
    Path("/tmp/unicorn-issue24-requirement-ran").unlink(missing_ok=True)
    client = _client(env)
    working_nodes = client.get_nodes().take(2)
    experiment = Experiment().map(Pipeline().then(Where(name="where")), working_nodes)
    for deployment in experiment:
        deployment.environment_definition = DockerImage(image=BASE_IMAGE)
    experiment[1].environment_definition.runtime_context.environment_variables["ROLE"] = "second"
    experiment[1].cleanup = False  # netunicorn: keep the container after the execution
    client.prepare_experiment(experiment, "video_watchers_example")
    info = _finished(client, "video_watchers_example")
    try:
        assert [(r.node.name, r.error, r.result[0].unwrap()["where"][0].unwrap()) for r in info.execution_result] == [
            ("h1", None, {"container": True, "role": None}), ("h2", None, {"container": True, "role": "second"})]
        assert not Path("/tmp/unicorn-issue24-requirement-ran").exists()
        kept = run_containers(env.home, "video_watchers_example")
        assert len(kept) == 1 and kept[0].endswith("-h2")  # h1's removed, h2's kept (cleanup=False)
        assert podman("inspect", "--format", "{{.State.Running}}", kept[0]).stdout.strip() == "false"
    finally:
        for name in run_containers(env.home, "video_watchers_example"):
            podman("rm", "--force", name, check=False)


def test_external_experiments_loop_gives_its_time_and_image(env: Env) -> None:
    client = _client(env)
    nodes = client.get_nodes().take(5)
    pipeline = Pipeline()  # Dummy Pipeline
    experiment = Experiment().map(pipeline, nodes)  # map to the required nodes
    for deployment in experiment.deployment_map:  # the notebook's experiment.deployments fails in netunicorn too
        deployment.keep_alive_timeout_minutes = 10**5  # set timeout to whatever time your experiment needs
        deployment.environment_definition = DockerImage(image=BASE_IMAGE)  # set your image name
    experiment_name = "experiment_cool_name"
    client.prepare_experiment(experiment, experiment_name)
    info = _finished(client, experiment_name)
    assert [(r.node.name, r.status, r.error) for r in info.execution_result] == [("h1", "ok", None),
                                                                                 ("h2", "ok", None)]
    for host in ("h1", "h2"):
        shipped = env.home / "runs" / experiment_name / "project" / "files" / "nodes" / host
        assert json.loads((shipped / "node.json").read_text())["time_limit"] == 10**5 * 60
        assert json.loads((shipped / "deploy.json").read_text())["container"]["image"] == BASE_IMAGE


def test_what_cannot_run_here_is_refused_in_one_line(env: Env) -> None:
    client = _client(env)
    experiment = Experiment().map(Pipeline().then(Where(name="where")), client.get_nodes().take(1))
    experiment[0].environment_definition = ShellExecution()
    experiment[0].environment_definition.runtime_context.ports_mapping[8080] = 18080
    with pytest.raises(RemoteClientException) as refused:
        client.prepare_experiment(experiment, "ports")
    assert str(refused.value) == ("node h1: RuntimeContext.ports_mapping is {8080: 18080}, but its environment is "
                                  "ShellExecution, which runs on the host itself; use DockerImage for a container "
                                  "with ports_mapping, or leave it empty")
    assert not (env.home / "runs" / "ports").exists()
