"""The ``unicorn-ansible`` command's entry point.

Ansible reads the inventory in a process of its own (``ansible/inventory_list.py``), which spends
most of its time loading Ansible. A command line that names an inventory starts that reader
first thing, before the command line's modules load; click then parses the command line, and the
commands that read the inventory first hand the reader their ``-i`` sources as soon as it is
parsed (the option's callback, ui/cli.py), before the experiment file loads. Loading, parsing and
reading all take their time at once. netunicorn-base is loaded only by an experiment that uses it
(compat/netunicorn.py).
"""

from __future__ import annotations

import sys

from ..ansible import inventory_list


def names_an_inventory(argv: list[str]) -> bool:
    """Whether the command line gives an inventory (-i, --inventory): a reader is then worth
    starting before click knows the command (unused, it ends with this process)."""
    return any(arg.startswith(("-i", "--inventory")) for arg in argv)


def main(argv: list[str] | None = None) -> None:
    if names_an_inventory(sys.argv[1:] if argv is None else argv):
        inventory_list.warm_up()
    from .cli import main as cli_main

    cli_main(argv)
