"""mkdocs hook: the pages that are generated from the code at build time, so they cannot drift.

- ``cli.md``: the CLI reference, every command's ``--help`` as click prints it, walked from the
  command group in ``unicorn_ansible/ui/cli.py`` (groups such as ``testbed`` with their commands).
- ``api.md``: the API reference, one mkdocstrings entry per public name of
  ``unicorn_ansible/__init__.py`` (``__all__``), at the module that defines it.

A page asks for a part with a marker line (``<!-- generated: cli-reference -->``,
``<!-- generated: api-reference -->``). tests/unit/test_docs.py imports this file too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click

CLI_MARKER = "<!-- generated: cli-reference -->"
API_MARKER = "<!-- generated: api-reference -->"
PROG = "unicorn-ansible"
WIDTH = 100  # help text wrapped at a fixed width: the same reference on every terminal


def commands(group: click.Group | None = None, ctx: click.Context | None = None) -> Iterator[click.Context]:
    """A context for the group and for every command under it, depth first, in click's order."""
    if group is None:
        from unicorn_ansible.ui.cli import cli

        group = cli
    if ctx is None:
        ctx = click.Context(group, info_name=PROG, terminal_width=WIDTH, max_content_width=WIDTH)
    yield ctx
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        child = click.Context(command, info_name=name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH)
        if isinstance(command, click.Group):
            yield from commands(command, child)
        else:
            yield child


def cli_reference() -> str:
    parts = []
    for ctx in commands():
        title = ctx.command_path
        level = "##" if ctx.parent is None or ctx.parent.parent is None else "###"
        short = ctx.command.get_short_help_str(limit=WIDTH)
        parts.append(f"{level} `{title}`\n\n{short}\n\n```text\n{ctx.command.get_help(ctx)}\n```\n")
    return "\n".join(parts)


# names whose objects are the returns library's own: documented there, not here
RETURNS = {"Result", "Success", "Failure", "is_successful"}


def api_reference() -> str:
    import unicorn_ansible

    parts = []
    for name in unicorn_ansible.__all__:
        if name == "__version__":
            continue
        obj = getattr(unicorn_ansible, name)
        if name in RETURNS:
            parts.append(f"## `{name}`\n\nThe [returns](https://returns.readthedocs.io/) library's own "
                         f"`{obj.__module__}.{getattr(obj, '__qualname__', name)}`, re-exported.\n")
            continue
        if _in_namespace_package(obj.__module__):
            # griffe does not load modules of a namespace package (no __init__.py: campaign/):
            # their docstrings are read from the imported objects here
            parts.append(f"## `{name}`\n\n{_inspected(name, obj)}")
            continue
        # the entry's own heading: the name as users import it, then its signature
        parts.append(f"::: {obj.__module__}.{obj.__qualname__}\n    options:\n"
                     f"      show_root_heading: true\n      show_root_full_path: false\n      heading_level: 2\n"
                     f"      separate_signature: true\n      show_signature_annotations: true\n")
    return "\n".join(parts)


def _in_namespace_package(module: str) -> bool:
    import importlib

    parts = module.split(".")
    return any(getattr(importlib.import_module(".".join(parts[:end])), "__file__", None) is None
               for end in range(1, len(parts)))


def _inspected(name: str, obj: Any) -> str:
    import inspect

    def entry(label: str, member: Any) -> str:
        try:
            signature = str(inspect.signature(member))
        except (TypeError, ValueError):
            signature = ""
        return f"```python\n{label}{signature}\n```\n\n{inspect.getdoc(member) or ''}\n"

    text = [f"`{obj.__module__}.{obj.__qualname__}`\n", entry(name, obj)]
    if inspect.isclass(obj):
        for member_name, member in vars(obj).items():
            if member_name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                continue
            if isinstance(member, property):
                text.append(f"### `{name}.{member_name}`\n\n{inspect.getdoc(member) or ''}\n")
            else:
                text.append(f"### `{name}.{member_name}`\n\n" + entry(member_name, member))
    return "\n".join(text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_reference())
    return markdown
