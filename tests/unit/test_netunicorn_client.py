"""The client's remaining differences from netunicorn's, where netunicorn-base and netunicorn-client
show their behaviour without a server (issue 24): errors, flag values, the local executor, the
deployment settings a netunicorn user sets after ``map``, the extra's dependencies."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from netunicorn.base import DockerImage as TheirDockerImage
from netunicorn.base import Experiment as TheirExperiment
from netunicorn.base import Pipeline as TheirPipeline
from netunicorn.base import ShellExecution as TheirShellExecution
from netunicorn.base import Task as TheirTask
from netunicorn.base.types import ExecutorState as TheirExecutorState
from netunicorn.base.types import FlagValues as TheirFlagValues
from netunicorn.client.remote import RemoteClient as TheirRemoteClient

from unicorn_ansible import (
    Client,
    DockerImage,
    Executor,
    ExecutorState,
    Experiment,
    ExperimentError,
    FlagValues,
    InventoryError,
    Node,
    Pipeline,
    RemoteClient,
    RemoteClientException,
    ShellExecution,
    Task,
    UnicornError,
    get_local_executor,
)
from unicorn_ansible.compat.netunicorn import as_experiment
from unicorn_ansible.model.nodes import Architecture


class Echo(TheirTask):
    requirements = ["echo prepared"]

    def run(self):
        return "echo"


class Twice(Task):
    def run(self):
        return 2


def _node(name: str = "h1") -> Node:
    return Node(name, {}, Architecture.LINUX_AMD64)


def test_flag_values_equal_netunicorns_both_ways() -> None:
    ours, theirs = FlagValues(text_value="go", int_value=3), TheirFlagValues(text_value="go", int_value=3)
    assert ours == theirs and theirs == ours and not ours != theirs
    assert FlagValues(int_value=1) != TheirFlagValues(int_value=2) and FlagValues() == TheirFlagValues()
    assert FlagValues(int_value=1) != {"int_value": 1}


def test_an_unusable_experiment_or_inventory_is_a_remote_client_exception_and_still_ours(isolated_home: Path) -> None:
    client = RemoteClient()
    with pytest.raises(RemoteClientException, match="the experiment has no deployments") as empty:
        client.prepare_experiment(Experiment(), "empty")
    assert isinstance(empty.value, ExperimentError) and isinstance(empty.value, UnicornError)
    with pytest.raises(RemoteClientException, match="ghost") as ghost:
        client.prepare_experiment(TheirExperiment().append(_their_node("ghost"), TheirPipeline()), "ghost")
    assert isinstance(ghost.value, InventoryError)
    assert not (isolated_home / "runs" / "empty").exists() and not (isolated_home / "runs" / "ghost").exists()


def _their_node(name: str) -> object:
    from netunicorn.base.nodes import Node as TheirNode

    return TheirNode(name, {})


def test_cancel_executors_takes_netunicorns_call_and_ours() -> None:
    theirs = inspect.signature(TheirRemoteClient.cancel_executors).parameters
    ours = inspect.signature(Client.cancel_executors).parameters
    assert list(theirs)[:2] == list(ours)[:2] == ["self", "executors"]
    assert "cancellation_context" in ours
    with pytest.raises(UnicornError, match=r"names a run but no executors"):
        Client.cancel_executors(object.__new__(Client), "run-1")


def test_netunicorns_executor_of_the_local_executor_notebook_runs_the_pipeline_here() -> None:
    pipeline = TheirPipeline().then(Echo(name="dummy1"))
    executor = Executor(executor_id="local", gateway_endpoint="fake", experiment_id="local", heartbeat=False)
    assert executor.state == ExecutorState.LOOKING_FOR_EXECUTION_GRAPH == TheirExecutorState.LOOKING_FOR_EXECUTION_GRAPH
    with pytest.raises(UnicornError, match="no gateway to fetch a pipeline from"):
        executor()
    pipeline.report_results = False
    executor.execution_graph = pipeline
    executor.state = ExecutorState.EXECUTING
    assert executor() is None and executor.state == TheirExecutorState.FINISHED
    assert executor.execution_graph_results.unwrap()["dummy1"][0].unwrap() == "echo"
    assert [member.name for member in ExecutorState] == [member.name for member in TheirExecutorState]
    assert get_local_executor(Pipeline().then(Twice(name="t")))().unwrap()["t"][0].unwrap() == 2


def test_what_a_netunicorn_user_sets_on_a_deployment_after_map_is_kept() -> None:
    """video_watchers' and external_experiment's loops: an image, variables, a time limit, cleanup."""
    experiment = TheirExperiment().map(TheirPipeline().then(Echo(name="echo")), [_their_node("h1"), _their_node("h2"),
                                                                                  _their_node("h3")])
    first, second, third = experiment.deployment_map
    first.environment_definition = TheirDockerImage(image="lab/chromium:1")
    first.keep_alive_timeout_minutes = 10**5
    second.environment_definition.runtime_context.environment_variables["ROLE"] = "second"
    second.environment_definition.runtime_context.ports_mapping[8080] = 18080
    second.cleanup = False
    third.environment_definition = TheirShellExecution()
    ours = as_experiment(experiment)
    image, built, shell = (d.environment_definition for d in ours)
    assert isinstance(image, DockerImage) and image.image == "lab/chromium:1" and image.commands == []
    assert not image.shell_fallback and ours[0].keep_alive_timeout_minutes == 10**5
    assert isinstance(built, DockerImage) and built.image is None and built.shell_fallback
    assert built.commands == ["echo prepared"] and built.runtime_context.environment_variables == {"ROLE": "second"}
    assert built.runtime_context.ports_mapping == {8080: 18080} and ours[1].cleanup is False
    assert ours[1].keep_alive_timeout_minutes is None  # netunicorn's default 10: the run's limit
    assert isinstance(shell, ShellExecution) and shell.commands == [] and ours[2].cleanup is True
    third.keep_alive_timeout_minutes = -1
    with pytest.raises(ExperimentError, match=r"^node h3: Deployment.keep_alive_timeout_minutes is -1; it must be"):
        as_experiment(experiment)


def test_the_netunicorn_extra_has_requests() -> None:
    """netunicorn-library's letsencrypt and send_data import requests on the controller."""
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    extra = re.search(r"^netunicorn = \[(.*)\]$", text, re.MULTILINE)
    assert extra is not None and '"requests>=2.28,<3"' in extra.group(1)
    assert '"netunicorn-client>=0.4.0,<0.5"' in text
