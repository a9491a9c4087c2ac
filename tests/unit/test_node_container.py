"""Container environments' pure parts: the engine chosen, the build steps, the run command line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from unicorn_ansible import DockerImage, RuntimeContext, ShellExecution
from unicorn_ansible.compiler.compile import container_fallback, container_spec
from unicorn_ansible.errors import ExperimentError, InventoryError
from unicorn_ansible.node import container
from unicorn_ansible.node.__main__ import _with_host_settings
from unicorn_ansible.node.wire import ContainerSpec, DeploySpec


def _spec(fields: dict) -> DeploySpec:
    return DeploySpec.from_untrusted(fields, "deploy.json")


def test_a_host_without_an_engine_is_one_line_naming_both_engines(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    spec = _spec({"node": "h7", "container": {"image": "img:1"}})
    error = container.deploy_container(spec, str(tmp_path), str(tmp_path / "logs")).error or ""
    assert "\n" not in error and error.startswith("host h7 has no container engine")
    assert "podman is not installed; docker is not installed" in error and "unicorn_container_engine" in error
    assert container.find_engine("nerdctl") == (None, "nerdctl is not installed")
    assert container.find_engine("none") == (None, "unicorn_container_engine is none")


def test_netunicorns_default_image_runs_as_shell_with_a_notice_where_no_engine_is(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    spec = _spec({"node": "h7", "container": {"image": None, "shell_fallback": True}})
    notice = container.deploy_container(spec, str(tmp_path), str(tmp_path / "logs")).notice  # as shell
    assert notice and "as ShellExecution" in notice and "h7" in notice


def _registry_less_engine(folder: Path) -> str:
    """An engine command that answers but has no image and reaches no registry (as on the test machines)."""
    engine = folder / "engine"
    engine.write_text('#!/bin/sh\ncase "$1" in\n  ps) exit 0 ;;\n'
                      '  pull) echo "Trying to pull $2..."; echo "Error: dial tcp: lookup registry: no such host"; exit 125 ;;\n'
                      '  *) echo "Error: $2: image not known"; exit 125 ;;\nesac\n')
    engine.chmod(0o700)
    return str(engine)


def test_netunicorns_default_image_runs_as_shell_when_its_default_base_cannot_be_pulled(tmp_path: Path) -> None:
    spec = _spec({"node": "h7", "python": "3.11", "commands": [],
                  "container": {"image": None, "base_image": None, "shell_fallback": True,
                                "engine": _registry_less_engine(tmp_path)}})
    notice = container.deploy_container(spec, str(tmp_path), str(tmp_path / "logs")).notice or ""  # as shell
    assert notice and "\n" not in notice
    assert notice.startswith("node h7 runs netunicorn's default DockerImage environment as ShellExecution: ")
    assert "its base image python:3.11-slim is not on the host and cannot be pulled with engine" in notice
    assert "no such host" in notice and "set the inventory variable unicorn_container_base_image" in notice


def test_a_chosen_base_image_that_cannot_be_pulled_is_the_nodes_error_even_for_netunicorns_default(
        tmp_path: Path) -> None:
    spec = _spec({"node": "h7", "python": "3.11", "commands": ["pip install x"],
                  "container": {"image": None, "base_image": "lab/python:3.11", "shell_fallback": True,
                                "engine": _registry_less_engine(tmp_path)}})
    built = container.deploy_container(spec, str(tmp_path), str(tmp_path / "logs"))
    assert built.notice is None and built.error is not None  # not as shell, and not ok
    assert built.error.startswith("host h7: image lab/python:3.11 is not on the host and cannot be pulled")
    assert built.error.endswith("it is the base of the environment built from the requirements: set "
                                "DockerImage(base_image=...) or the inventory variable unicorn_container_base_image "
                                "to an image with Python 3.11 that the host has")


def test_an_image_that_cannot_be_had_is_an_error_naming_its_fix(tmp_path: Path) -> None:
    spec = _spec({"node": "h7", "python": "3.11", "commands": [],
                  "container": {"image": "lab/tools:1", "engine": _registry_less_engine(tmp_path)}})
    error = container.deploy_container(spec, str(tmp_path), str(tmp_path / "logs")).error or ""
    assert "\n" not in error and error.startswith("host h7: image lab/tools:1 is not on the host and cannot be pulled")
    assert error.endswith("; load it onto the host (engine load -i FILE, or engine pull from a registry the host "
                          "reaches) or name an image the host has")


def test_netunicorns_default_image_with_requirements_never_runs_them_on_the_host_unasked(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No image to be had (no engine, or the default base unpullable): the node fails, naming both fixes."""
    fields = {"node": "h7", "python": "3.11", "commands": ["apt-get install -y chromium-driver"],
              "container": {"image": None, "base_image": None, "default_image": True, "shell_fallback": False,
                            "engine": _registry_less_engine(tmp_path)}}
    built = container.deploy_container(_spec(fields), str(tmp_path), str(tmp_path / "logs"))
    error = built.error or ""
    assert built.notice is None and "\n" not in error
    assert error.startswith("host h7: netunicorn's default DockerImage environment has no image to run its "
                            "requirements in: its base image python:3.11-slim is not on the host and cannot be pulled")
    assert "set the inventory variable unicorn_container_base_image to an image with Python 3.11" in error
    assert error.endswith("or set the inventory variable unicorn_container_fallback=shell to run this node's "
                          "requirements on the host itself")
    monkeypatch.setenv("PATH", "/nonexistent")
    engineless = dict(fields, container=dict(fields["container"], engine=None))
    error = container.deploy_container(_spec(engineless), str(tmp_path), str(tmp_path / "logs")).error or ""
    assert "the host has no container engine (podman is not installed; docker is not installed)" in error
    assert "install podman or Docker there" in error and "unicorn_container_fallback=shell" in error
    allowed = dict(engineless, container=dict(engineless["container"], shell_fallback=True))
    assert container.deploy_container(_spec(allowed), str(tmp_path), str(tmp_path / "logs")).notice


def test_the_compiler_lets_netunicorns_default_run_as_shell_only_unasked_without_requirements_or_when_asked() -> None:
    default = DockerImage(shell_fallback=True)
    spec = container_spec(default, "h1")
    assert spec is not None and spec.default_image and not spec.shell_fallback
    assert (container_spec(default, "h1", own_requirements=False) or ContainerSpec()).shell_fallback
    assert (container_spec(default, "h1", "shell") or ContainerSpec()).shell_fallback
    chosen = container_spec(DockerImage(image="img:1", shell_fallback=True), "h1", "shell")
    assert chosen is not None and not chosen.default_image and not chosen.shell_fallback
    assert ContainerSpec.from_untrusted(spec.to_json(), "deploy.json") == spec  # the new fields travel
    assert container_fallback("h1", {}) == "none" and container_fallback("h1", {"unicorn_container_fallback": "shell"}) == "shell"
    with pytest.raises(InventoryError, match="^host h1: unicorn_container_fallback is 'host'; set it to shell"):
        container_fallback("h1", {"unicorn_container_fallback": "host"})


def test_a_shell_environment_refuses_a_containers_runtime_context_in_one_line() -> None:
    for context in (RuntimeContext(ports_mapping={80: 8080}), RuntimeContext(network="lab"),
                    RuntimeContext(additional_arguments=["--init"])):
        with pytest.raises(ExperimentError, match="^node h1: RuntimeContext.* ShellExecution, which runs on the host"):
            container_spec(ShellExecution(runtime_context=context), "h1")
    assert container_spec(ShellExecution(runtime_context=RuntimeContext(environment_variables={"A": "1"})), "h1") is None


def test_build_steps_drop_a_leading_sudo_as_netunicorn_does() -> None:
    assert container.build_step("sudo apt-get install -y iperf3") == "apt-get install -y iperf3"
    assert container.build_step("pip install sudo") == "pip install sudo"


def test_the_built_image_is_named_after_its_base_requirements_and_python() -> None:
    key = container.image_key("base:1", ["pip install a"], "3.11")
    assert key == container.image_key("base:1", ["pip install a"], "3.11")
    assert key != container.image_key("base:2", ["pip install a"], "3.11")
    assert key != container.image_key("base:1", ["pip install b"], "3.11")


def test_the_pipeline_base_image_wins_over_the_inventory_and_shell_specs_are_untouched() -> None:
    spec = _spec({"container": {"image": None, "base_image": None}})
    assert _with_host_settings(spec, "podman", "lab/python:3.11").container == ContainerSpec(
        image=None, base_image="lab/python:3.11", engine="podman")
    spec = _spec({"container": {"image": None, "base_image": "mine:1"}})
    assert (_with_host_settings(spec, "", "lab/python:3.11").container or ContainerSpec()).base_image == "mine:1"
    assert _with_host_settings(_spec({"container": None}), "podman", "x") == _spec({"container": None})


def test_the_executor_runs_in_the_container_with_the_work_folder_and_the_context(tmp_path: Path) -> None:
    (tmp_path / "node.json").write_text(json.dumps(
        {"environment_variables": {"A": "1"}, "flags": {"endpoint": "unix:/run/flags.sock"}}))
    spec = ContainerSpec(engine="/usr/bin/podman", image="img:1", name="unicorn-r-h1", ports={"80": 8080},
                         network=None, arguments=("--init",))
    argv = container.run_command(spec, str(tmp_path), [f"{tmp_path}/unicorn-node.pyz"])
    assert argv[:2] == ["/usr/bin/podman", "run"] and "--rm" in argv and ["--pid", "host"] == argv[5:7]
    assert f"{tmp_path}:{tmp_path}" in argv and "/run/flags.sock:/run/flags.sock" in argv
    assert "8080:80" in argv and "A=1" in argv and "--init" in argv and "host" not in argv[7:]
    assert argv[-6:] == ["python3", "img:1", f"{tmp_path}/unicorn-node.pyz", "run", "--workdir", str(tmp_path)]
    kept = container.run_command(dataclasses.replace(spec, cleanup=False), str(tmp_path), ["b.pyz"])  # cleanup=False
    assert "--rm" not in kept and kept[:4] == ["/usr/bin/podman", "run", "--name", "unicorn-r-h1"]
    no_ports = container.run_command(dataclasses.replace(spec, ports={}), str(tmp_path), ["b.pyz"])
    assert ["--network", "host"] == no_ports[no_ports.index("--network"):no_ports.index("--network") + 2]


def test_compiled_container_specs_check_the_runtime_context() -> None:
    assert container_spec(ShellExecution(), "h1") is None
    spec = container_spec(DockerImage(image="img:1", runtime_context=RuntimeContext(ports_mapping={80: "8080"})),
                          "h1")
    assert spec is not None and spec.ports == {"80": 8080} and spec.image == "img:1"
    assert container.container_name("/home/u/.unicorn-ansible/hosts/h/runs/run-1-ab12", "h1/x") == \
        "unicorn-run-1-ab12-h1-x"
    with pytest.raises(ExperimentError, match="additional_arguments must be a list"):
        container_spec(DockerImage(runtime_context=RuntimeContext(additional_arguments="--init")), "h1")  # type: ignore[arg-type]
    with pytest.raises(ExperimentError, match="ports_mapping"):
        container_spec(DockerImage(runtime_context=RuntimeContext(ports_mapping={"http": 80})), "h1")  # type: ignore[dict-item]
