"""The ``unicorn-ansible`` command's entry point: starts reading the inventory, then loads the rest.

Ansible reads the inventory in a process of its own (``ansible/inventory_list.py``); started
here, before the command line's modules and the experiment's load, both take their time at once.
netunicorn-base is loaded only by an experiment that uses it (compat/netunicorn.py).
"""

from __future__ import annotations

import sys

from ..ansible import inventory_list

#: the commands that read the inventory given with -i first thing
_READ_FIRST = ("run", "compile", "nodes")


def inventory_sources(argv: list[str]) -> list[str]:
    """The -i/--inventory values of a command that reads them first thing (else none)."""
    commands = [arg for arg in argv if not arg.startswith("-")]
    if not commands or commands[0] not in _READ_FIRST:
        return []
    sources, following = [], False
    for arg in argv:
        if following:
            sources.append(arg)
        elif arg.startswith("--inventory="):
            sources.append(arg.split("=", 1)[1])
        elif arg.startswith("-i") and arg not in ("-i", "--inventory") and not arg.startswith("--"):
            sources.append(arg[2:])
        following = not following and arg in ("-i", "--inventory")
    return sources


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sources = inventory_sources(args)
    if sources:
        inventory_list.prefetch(sources)
    from .cli import main as cli_main

    cli_main(argv)
