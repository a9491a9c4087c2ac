"""`unicorn-ansible testbed up|status|down`: a local lab of SSH hosts in network namespaces."""

from __future__ import annotations

import json
import time

import click

from ..home import testbed_dir
from ..ui.tables import print_table
from . import lab as _testbed
from .layers import Rooms


@click.group()
def testbed() -> None:
    """A local lab of SSH hosts (network namespaces, each with its own sshd) to try experiments on.

    \b
    Example:
      unicorn-ansible testbed up --hosts 3
      unicorn-ansible run examples/hello.py -i ~/.unicorn-ansible/testbed/inventory.ini
      unicorn-ansible testbed down
    """


@testbed.command()
@click.option("--hosts", "count", type=click.IntRange(1, _testbed.MAX_HOSTS), required=True, help="Number of hosts.")
@click.option("--delay", "delay_ms", type=click.FloatRange(min=0), help="Added delay per link direction, ms (netem).")
@click.option("--loss", "loss_pct", type=click.FloatRange(0, 100), help="Packet loss per link direction, % (netem).")
@click.option("--rate", help="Rate limit per link direction, e.g. 10mbit (tc tbf).")
def up(count: int, delay_ms: float | None, loss_pct: float | None, rate: str | None) -> None:
    """Bring up N hosts h1..hN and write their inventory.

    Each host has its own root, an overlay of this machine's: what it installs or changes stays on it.

    \b
    Example:
      unicorn-ansible testbed up --hosts 3 --rate 10mbit
    """
    began = time.monotonic()
    made = _testbed.up(count, delay_ms=delay_ms, loss_pct=loss_pct, rate=rate)
    print_table(("host", "address", "netns"), [(host.name, host.address, host.netns) for host in made.hosts],
                f"testbed up: {len(made.hosts)} host(s) in {time.monotonic() - began:.1f} s")
    click.echo(f"inventory: {made.inventory}")
    if made.layers == Rooms.MEMORY:
        click.echo("note: the hosts' own files are kept in memory (a tmpfs): this home folder is on an overlay, "
                   "which cannot hold their layers")
    click.echo(f"try: unicorn-ansible run EXPERIMENT.py -i {made.inventory}")


@testbed.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Show the testbed's hosts and whether each is alive.

    \b
    Example:
      unicorn-ansible testbed status --json
    """
    found = _testbed.status()
    if as_json:
        click.echo(json.dumps(found, indent=2))
    elif found is None:
        click.echo("no testbed is up (unicorn-ansible testbed up --hosts N)")
    else:
        print_table(("host", "address", "state"),
                    [(host["name"], host["address"], "up" if host["netns_exists"] and host["sshd_alive"] else "DOWN")
                     for host in found["hosts"]], "testbed")
        click.echo(f"inventory: {found['inventory']}")
    if found is not None and not found["healthy"]:
        raise SystemExit(1)


@testbed.command()
def down() -> None:
    """Stop the testbed's hosts and remove its namespaces, bridge and files (keys included).

    Only the testbed of this home folder (UNICORN_ANSIBLE_HOME) is taken down.

    \b
    Example:
      unicorn-ansible testbed down
    """
    if _testbed.down():
        click.echo("testbed down")
    else:
        click.echo(f"no testbed is up in {testbed_dir()}")


if __name__ == "__main__":
    testbed()
