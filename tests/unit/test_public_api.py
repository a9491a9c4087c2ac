"""The public names: one list (the package's ``__all__``), every name importable from the package,
and ``import unicorn_ansible`` alone loads none of them (the command line starts without them)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import unicorn_ansible


def test_the_api_module_exports_exactly_the_packages_list() -> None:
    source = Path(unicorn_ansible.__file__).with_name("_api.py")
    exported = [alias.asname for node in ast.parse(source.read_text()).body if isinstance(node, ast.ImportFrom)
                for alias in node.names]
    assert None not in exported, "every import of _api.py is a re-export (X as X)"
    assert sorted(exported) == sorted(unicorn_ansible.__all__)
    assert len(set(unicorn_ansible.__all__)) == len(unicorn_ansible.__all__)


def test_every_public_name_is_importable_from_the_package() -> None:
    for name in unicorn_ansible.__all__:
        assert getattr(unicorn_ansible, name) is not None, name
    assert set(unicorn_ansible.__all__) <= set(dir(unicorn_ansible))


def test_importing_the_package_loads_the_public_names_when_first_used() -> None:
    probe = ("import sys, unicorn_ansible; before = 'unicorn_ansible._api' in sys.modules; "
             "from unicorn_ansible import Task, load_results; "
             "print(before, 'unicorn_ansible._api' in sys.modules, Task.__module__, load_results.__module__)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "True", "unicorn_ansible.model.task", "unicorn_ansible.results.load"]


def test_run_and_the_client_take_the_compile_options_typed_and_documented_once() -> None:
    """run()'s keyword arguments are CompileOptions' fields with their types (RunOptions); the
    Client's are the same but forks, which it takes as a parameter of its own."""
    import dataclasses
    import inspect
    import typing

    from unicorn_ansible.compiler.settings import CompileOptions
    from unicorn_ansible.engine.lifecycle import EngineOptions, RunOptions

    fields = typing.get_type_hints(CompileOptions)
    assert typing.get_type_hints(RunOptions) == fields == {f.name: fields[f.name] for f in dataclasses.fields(CompileOptions)}
    assert set(typing.get_type_hints(EngineOptions)) == set(fields) - {"forks"}
    for function in (unicorn_ansible.run, unicorn_ansible.Client.__init__, unicorn_ansible.RemoteClient.__init__):
        options = inspect.signature(function).parameters["options"]
        assert options.kind is inspect.Parameter.VAR_KEYWORD
        assert "Unpack[" in str(options.annotation), function
    lines = (inspect.getsource(EngineOptions) + inspect.getsource(RunOptions)).splitlines()
    documented = {line.split(":")[0].strip() for before, line in zip(lines, lines[1:]) if before.strip().startswith("#:")}
    assert documented == set(fields), "each option has its line of documentation"
