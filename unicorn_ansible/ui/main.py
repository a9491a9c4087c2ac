"""The ``unicorn-ansible`` command's entry point: starts reading the inventory, then loads the rest.

Ansible reads the inventory in a process of its own (``ansible/inventory_list.py``); started
here, before the command line's modules and the experiment's load, both take their time at once.
An experiment file that does not name netunicorn runs without loading netunicorn-base (see
``netunicorn_unused``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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


#: the commands that load an experiment file, and do without netunicorn when it does not name it
_EXPERIMENT_COMMANDS = ("run", "compile")
#: set when the command starts again because the experiment needed netunicorn after all
_WITH_NETUNICORN = "UNICORN_ANSIBLE_WITH_NETUNICORN"
#: the command started again (as its console script does, the folder it runs in not on the path)
_AGAIN = "import sys; del sys.path[0]; from unicorn_ansible.ui.main import main; main()"


def netunicorn_unused(argv: list[str]) -> bool:
    """Whether this command can do without netunicorn-base: it loads an experiment file (``.py``)
    that does not name netunicorn. Not when a password is typed (-k, -K: a fresh start would ask
    again), nor when it started again because the experiment needed netunicorn after all."""
    commands = [arg for arg in argv if not arg.startswith("-")]
    if not commands or commands[0] not in _EXPERIMENT_COMMANDS or os.environ.get(_WITH_NETUNICORN):
        return False
    if any(arg in ("-k", "-K") or arg.startswith("--ask-") for arg in argv):
        return False
    files = [arg for arg in commands[1:] if arg.endswith(".py")]
    try:
        return bool(files) and all(b"netunicorn" not in Path(file).read_bytes() for file in files)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sources = inventory_sources(args)
    if sources:
        inventory_list.prefetch(sources)
    from ..compat import netunicorn

    if argv is None and netunicorn_unused(args):  # before the model loads: our nodes are then our own, not netunicorn Nodes
        netunicorn.skip_in_this_process()
    from .cli import main as cli_main

    try:
        cli_main(argv)
    except netunicorn.NetunicornNeeded:
        # the experiment imported netunicorn through a module of its own: start again with it
        # (nothing was written yet: the experiment loads before its run folder is made)
        os.environ[_WITH_NETUNICORN] = "1"
        os.execv(sys.executable, [sys.executable, "-c", _AGAIN, *sys.argv[1:]])
