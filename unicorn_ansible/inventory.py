"""Inventories become node pools: one Node per host, properties from host vars and groups.

Ansible parses the inventory (its Python API, in a short process of its own:
``ansible/inventory_list.py``), so every form Ansible reads works: INI, YAML, a directory
with group_vars and host_vars, a dynamic inventory script or plugin. Secrets never become
properties. Without sources the inventory is the embedded default, ``inventories/local/hosts.yml``.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .ansible import inventory_list
from .errors import InventoryError
from .hostvars import is_secret, is_secret_name, is_vault_encrypted
from .model.nodes import Architecture, CountableNodePool, Node
from .resources import inventories_dir

if TYPE_CHECKING:
    from .node.wire import JSONObject, JSONValue

__all__ = ["LEFT_OUT", "Inventory", "is_secret", "is_secret_name", "is_vault_encrypted", "load_inventory"]

#: what the inventory snapshot says in place of a value left out
LEFT_OUT = "(left out: a secret by its name, vault-encrypted, or a template that refers to a secret)"


def _architecture(value: object) -> Architecture:
    try:
        return Architecture(str(value))
    except ValueError:
        return Architecture.UNKNOWN


#: PATH as it was before ensure_ansible_on_path changed it (None: unchanged)
_path_as_started: str | None = None


def ensure_ansible_on_path() -> None:
    """ansible-runner looks its commands up on PATH: put this Python's scripts folder first."""
    global _path_as_started
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        _path_as_started = path if _path_as_started is None else _path_as_started
        os.environ["PATH"] = scripts + os.pathsep + path


def user_path() -> str:
    """PATH as the user's shell has it (hints name commands that run there), not as the run extended it."""
    return os.environ.get("PATH", os.defpath) if _path_as_started is None else _path_as_started


@dataclass
class Inventory:
    """An inventory: where it comes from (no sources: the embedded local default) and its hosts."""

    sources: list[str]
    hostvars: dict[str, dict[str, object]]
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: templated values that are secrets because they refer to one (hostvars.secret_templates)
    secret_names: frozenset[str] = frozenset()

    @property
    def is_default(self) -> bool:
        return not self.sources

    def is_secret(self, name: str, value: object) -> bool:
        """Whether a host variable is a secret: by its name or value, or a template referring to one."""
        return name in self.secret_names or is_secret(name, value)

    def node(self, host: str) -> Node:
        variables = {k: v for k, v in self.hostvars.get(host, {}).items() if not self.is_secret(k, v)}
        member_of = sorted(group for group, hosts in self.groups.items() if host in hosts)
        variables["groups"] = member_of
        return Node(host, variables, _architecture(variables.get("unicorn_architecture")))

    def snapshot(self, hosts: list[str]) -> dict[str, dict[str, object]]:
        """The hosts' variables as a run folder keeps them: a secret's value replaced by :data:`LEFT_OUT`."""
        return {host: {**{k: LEFT_OUT if self.is_secret(k, v) else v for k, v in self.hostvars.get(host, {}).items()},
                       "groups": self.node(host)["groups"]} for host in hosts}

    def nodes(self, architectures: dict[str, Architecture] | None = None) -> CountableNodePool:
        """The node pool; ``architectures`` (from gathered facts) fill in what host vars do not say.
        A node whose architecture is still unknown learns it from the hosts' facts the first time
        it is read (e.g. by a TaskDispatcher), for every such node of the pool at once."""
        pool = []
        learner = _ArchitectureLearner(self)
        for host in self.hostvars:
            node = self.node(host)
            if node.architecture is Architecture.UNKNOWN and architectures and host in architectures:
                node.architecture = architectures[host]
            if node.architecture is Architecture.UNKNOWN:
                node.learn_architecture_with(learner)
            pool.append(node)
        return CountableNodePool(pool)

    def __contains__(self, host: str) -> bool:
        return host in self.hostvars


class _ArchitectureLearner:
    """Gathers the hosts' platform facts once, when the first node asks, and answers every node."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.found: dict[str, Architecture] | None = None

    def __call__(self, host: str) -> Architecture:
        if self.found is None:
            self.found = gather_architectures(self.inventory)
        return self.found.get(host, Architecture.UNKNOWN)


def local_inventory_file() -> Path:
    """The embedded default inventory, a real file: ``inventories/local/hosts.yml``."""
    return inventories_dir() / "local" / "hosts.yml"


def default_inventory() -> Inventory:
    """The embedded default: the local machine, run with the controller's own Python.

    Read from its file without Ansible (it is ours, and plain YAML); the architecture
    is this machine's, known without asking.
    """
    data = yaml.safe_load(local_inventory_file().read_text())
    architecture = local_architecture().value
    hostvars = {host: {"unicorn_architecture": architecture, **_rendered_locally(variables or {})}
                for host, variables in data["all"]["hosts"].items()}
    return Inventory(sources=[], hostvars=hostvars, groups={"ungrouped": list(hostvars)})


def _rendered_locally(variables: dict[str, object]) -> dict[str, object]:
    """The default's one templated value, as Ansible renders it: the controller's own Python."""
    playbook_python = "{{ ansible_playbook_python }}"
    return {name: sys.executable if value == playbook_python else value for name, value in variables.items()}


def default_inventory_text() -> str:
    """The embedded default inventory as Ansible reads it (a run folder keeps a copy)."""
    return local_inventory_file().read_text()


def local_architecture() -> Architecture:
    return architecture_of(platform.system(), platform.machine())


def architecture_of(system: str, machine: str) -> Architecture:
    """Map a system (Linux, Windows) and machine (x86_64, aarch64, ...) to an Architecture."""
    system = system.lower()
    machine = machine.lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    prefix = {"linux": "linux", "windows": "win", "win32nt": "win"}.get(system)
    if arch is None or prefix is None:
        return Architecture.UNKNOWN
    return Architecture(f"{prefix}/{arch}")


def load_inventory(sources: Sequence[str] | None = None) -> Inventory:
    """Parse inventory sources with Ansible; no sources: the embedded local default."""
    if not sources:
        return default_inventory()
    named = ", ".join(sources)
    resolved = [_existing(source) for source in sources]
    listing, rendered, secret_names = _ansible_inventory_list(resolved, named)
    hostvars = _hosts_in_order(listing)
    if not hostvars:
        raise InventoryError(f"inventory {named} has no hosts; add at least one host")
    for host, values in rendered.items():  # templated values (not secrets) as Ansible renders them
        hostvars[host].update(values)
    return Inventory(sources=resolved, hostvars=hostvars, groups=_groups(listing), secret_names=secret_names)


def _existing(source: str) -> str:
    path = Path(source).expanduser()
    if not path.exists():
        raise InventoryError(f"inventory {source} does not exist; pass an inventory file, folder or script with -i")
    return os.path.realpath(path)


def _ansible_inventory_list(resolved: list[str], named: str) -> tuple[JSONObject, dict[str, dict[str, object]],
                                                                      frozenset[str]]:
    """What ``ansible-inventory --list`` gives for the sources, the templated values rendered, and
    the templated values that are secrets (they refer to one)."""
    ensure_ansible_on_path()
    answer, err = inventory_list.collect(resolved)
    if answer is None:
        raise InventoryError(f"cannot read inventory {named}: {_first_line(err) or 'Ansible read no hosts'}; "
                             "check it with: ansible-inventory -i SOURCE --list")
    if "error" in answer:
        raise InventoryError(str(answer["error"]))
    names = answer.get("secret_names")
    secret_names = frozenset(name for name in names if isinstance(name, str)) if isinstance(names, list) else frozenset()
    rendered = {host: _variables(values) for host, values in _object(answer.get("rendered")).items()}
    return _object(answer.get("listing")), rendered, secret_names


def _object(value: JSONValue | None) -> JSONObject:
    """A JSON object of the reader's answer; anything else (absent) reads as an empty one."""
    return value if isinstance(value, dict) else {}


def _variables(value: JSONValue | None) -> dict[str, object]:
    """A host's variables of the reader's answer (name -> value), a new dict."""
    return dict[str, object](_object(value))


def _names(value: JSONValue | None) -> list[str]:
    """A list of names of the reader's answer (a group's hosts or children)."""
    return [str(name) for name in value] if isinstance(value, list) else []


def _members(listing: JSONObject, group: str, seen: set[str]) -> list[str]:
    """The hosts of a group and of its children, as listed."""
    if group in seen:
        return []
    seen.add(group)
    entry = _object(listing.get(group))
    hosts = _names(entry.get("hosts"))
    for child in _names(entry.get("children")):
        hosts.extend(_members(listing, child, seen))
    return hosts


def _groups(listing: JSONObject) -> dict[str, list[str]]:
    return {group: sorted(set(_members(listing, group, set())))
            for group in listing if group not in ("_meta", "all")}


def _hosts_in_order(listing: JSONObject) -> dict[str, dict[str, object]]:
    """Every host's variables, hosts in the inventory's own order (groups as written, hosts as listed)."""
    listed = _object(_object(listing.get("_meta")).get("hostvars"))
    hostvars = {host: _variables(values) for host, values in listed.items()}
    ordered: dict[str, dict[str, object]] = {}
    for host in _members(listing, "all", set()) + list(hostvars):
        ordered.setdefault(host, hostvars.get(host, {}))
    return ordered


def _first_line(text: str) -> str:
    """The line of Ansible's output that says what is wrong (an error rather than a warning)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in lines:
        if "ERROR" in line or "parse" in line.lower():
            return line.removeprefix("[WARNING]: ").removeprefix("ERROR! ").removeprefix("[ERROR]: ")
    return lines[0].removeprefix("[WARNING]: ") if lines else ""


def gather_architectures(inventory: Inventory, forks: int = 50) -> dict[str, Architecture]:
    """Ask every host for its system and machine (Ansible's platform facts); unreachable hosts are left out."""
    ensure_ansible_on_path()
    import ansible_runner

    with tempfile.TemporaryDirectory(prefix="unicorn-facts-") as private:
        runner = ansible_runner.run(
            private_data_dir=private,
            inventory=list(inventory.sources) or [str(local_inventory_file())],
            host_pattern="all",
            module="ansible.builtin.setup",
            module_args="gather_subset=!all,!min,platform",
            forks=forks,
            quiet=True,
            envvars={"ANSIBLE_PYTHON_INTERPRETER": "auto_silent"},
        )
        found: dict[str, Architecture] = {}
        for event in runner.events:
            if event.get("event") != "runner_on_ok":
                continue
            data = event.get("event_data", {})
            facts = data.get("res", {}).get("ansible_facts", {})
            found[data.get("host")] = architecture_of(facts.get("ansible_system", ""), facts.get("ansible_machine", ""))
    return found
