"""The docs site (issue 27): the CLI reference is generated from click's own help and names
every command; every path the architecture page names exists; `mkdocs build --strict` passes."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from unicorn_ansible.ui.cli import cli

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "docs" / "_hooks" / "generated.py"


def _hook():
    spec = importlib.util.spec_from_file_location("docs_generated_hook", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _every_command(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command under the group, walked here independently of the hook."""
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found.append(path + (name,))
        if isinstance(command, click.Group):
            found += _every_command(command, path + (name,))
    return found


def test_the_cli_reference_has_every_command_with_its_help() -> None:
    reference = _hook().cli_reference()
    commands = _every_command(cli)
    assert len(commands) > 10
    for path in commands:
        title = " ".join(("unicorn-ansible",) + path)
        assert f"`{title}`" in reference, f"{title} is not in the generated CLI reference"
        command = cli
        for name in path:
            command = command.get_command(click.Context(command), name)  # type: ignore[union-attr,assignment]
        assert f"Usage: {title}" in reference
        # the command's own options, as click prints them
        for param in command.params:
            for option in getattr(param, "opts", []):
                if option.startswith("-"):
                    assert option in reference, f"{title}'s {option} is not in the reference"


def test_the_cli_page_is_generated_not_written() -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    assert _hook().CLI_MARKER in page
    assert "Usage:" not in page  # the help comes from click when the site is built


def _named_paths(text: str) -> set[str]:
    """Paths the page names in code spans and code blocks that start at a top-level folder of the
    repository (`unicorn_ansible/engine/rundir.py`, `playbooks/`) or at a subpackage of the package
    (`model/travel.py`, read as `unicorn_ansible/model/travel.py`)."""
    tops = {path.name for path in ROOT.iterdir() if not path.name.startswith(".")} | {".ci"}
    subpackages = {path.name for path in (ROOT / "unicorn_ansible").iterdir() if path.is_dir()} - {"__pycache__"}
    spans = re.findall(r"`([^`\n]+)`", text)
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    names = set()
    for span in spans:
        names.update(re.findall(r"[\w./*+-]+", span))
    for block in blocks:
        names.update(re.findall(r"^[ ]*([\w./-]+/)\s", block, flags=re.M))
    paths = set()
    for name in names:
        name = name.rstrip(".,;:")
        first = name.split("/")[0]
        if "/" in name and first in tops:
            paths.add(name)
        elif "/" in name and first in subpackages and "." in name.split("/")[-1]:
            paths.add("unicorn_ansible/" + name)
    return paths


def test_every_path_the_architecture_page_names_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    paths = _named_paths(text)
    assert {"unicorn_ansible/engine/rundir.py", "unicorn_ansible/engine/lifecycle.py", "playbooks/"} <= paths
    missing = sorted(path for path in paths if not list(ROOT.glob(path.rstrip("/"))))
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_source_tree_on_the_architecture_page_names_real_modules() -> None:
    """The `unicorn_ansible/` tree: every `name/` folder at its first level is a folder of the package."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    tree = text[text.index("```\nunicorn_ansible/"):]
    tree = tree[:tree.index("```", 4)]
    folders = re.findall(r"^  (\w+)/ ", tree, flags=re.M)
    assert len(folders) >= 8
    missing = [name for name in folders if not (ROOT / "unicorn_ansible" / name).is_dir()]
    assert not missing, f"docs/architecture.md's source tree names folders that do not exist: {missing}"


def test_mkdocs_build_strict_passes(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    cli_page = (site / "cli.html").read_text()
    assert "unicorn-ansible testbed up" in cli_page and "Usage: unicorn-ansible run" in cli_page
    assert "load_results" in (site / "api.html").read_text()
    # the site opens from file://: links go to pages' own .html files, never to folders
    index = (site / "index.html").read_text()
    assert 'href="getting-started.html"' in index
    assert "fonts.googleapis" not in index  # no web fonts: nothing of the page's look needs the network
