"""Inventories become node pools: one Node per host, properties from host vars and groups.

Ansible parses the inventory (``ansible-inventory --list`` through ansible-runner),
so every form Ansible reads works: INI, YAML, a directory with group_vars and
host_vars, a dynamic inventory script or plugin. Secrets never become properties.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .model.nodes import Architecture, CountableNodePool, Node
from .errors import InventoryError
from .home import home_dir

LOCALHOST = "localhost"

# Variable names whose values are secrets: connection and become passwords, vault
# passwords, tokens. Their values never become node properties.
_SECRET_NAME = re.compile(r"(^|_)(pass|passwd|password|passphrase|secret|token|vault)(_|$)", re.IGNORECASE)


def is_secret(name: str, value: Any) -> bool:
    if _SECRET_NAME.search(name):
        return True
    if isinstance(value, dict) and "__ansible_vault" in value:
        return True
    return isinstance(value, str) and value.lstrip().startswith("$ANSIBLE_VAULT")


def _architecture(value: Any) -> Architecture:
    try:
        return Architecture(str(value))
    except ValueError:
        return Architecture.UNKNOWN


def ensure_ansible_on_path() -> None:
    """ansible-runner looks its commands up on PATH: put this Python's scripts folder first."""
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + path


@dataclass
class Inventory:
    """An inventory: where it comes from (None: the embedded local default) and its hosts."""

    sources: List[str]
    hostvars: Dict[str, Dict[str, Any]]
    groups: Dict[str, List[str]] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        return not self.sources

    def node(self, host: str) -> Node:
        variables = {k: v for k, v in self.hostvars.get(host, {}).items() if not is_secret(k, v)}
        member_of = sorted(group for group, hosts in self.groups.items() if host in hosts)
        variables["groups"] = member_of
        return Node(host, variables, _architecture(variables.get("unicorn_architecture")))

    def nodes(self, architectures: Optional[Dict[str, Architecture]] = None) -> CountableNodePool:
        """The node pool; ``architectures`` (from gathered facts) fill in what host vars do not say."""
        pool = []
        for host in self.hostvars:
            node = self.node(host)
            if node.architecture is Architecture.UNKNOWN and architectures and host in architectures:
                node.architecture = architectures[host]
            pool.append(node)
        return CountableNodePool(pool)

    def __contains__(self, host: str) -> bool:
        return host in self.hostvars


def default_inventory() -> Inventory:
    """The embedded default: the local machine, run with the controller's own Python; its work
    folders (hosts/localhost/...) are in the controller's home folder, which is where a host
    keeps them by default (~/.unicorn-ansible) unless UNICORN_ANSIBLE_HOME moves both."""
    return Inventory(
        sources=[],
        hostvars={
            LOCALHOST: {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "unicorn_architecture": _local_architecture().value,
                "unicorn_remote_root": str(home_dir()),
            }
        },
        groups={"ungrouped": [LOCALHOST]},
    )


def _local_architecture() -> Architecture:
    import platform

    machine = platform.machine().lower()
    system = platform.system().lower()
    return architecture_of(system, machine)


def architecture_of(system: str, machine: str) -> Architecture:
    """Map a system (Linux, Windows) and machine (x86_64, aarch64, ...) to an Architecture."""
    system = system.lower()
    machine = machine.lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    prefix = {"linux": "linux", "windows": "win", "win32nt": "win"}.get(system)
    if arch is None or prefix is None:
        return Architecture.UNKNOWN
    return Architecture(f"{prefix}/{arch}")


def default_inventory_yaml(inventory: Inventory) -> str:
    """The default inventory as a YAML file Ansible reads (JSON is YAML)."""
    return json.dumps({"all": {"hosts": inventory.hostvars}}, indent=2) + "\n"


def load_inventory(sources: Optional[Sequence[str]] = None) -> Inventory:
    """Parse inventory sources with Ansible; no sources: the embedded local default."""
    if not sources:
        return default_inventory()
    resolved = []
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise InventoryError(f"inventory {source} does not exist; pass an inventory file, folder or script with -i")
        resolved.append(str(path.resolve()))
    ensure_ansible_on_path()
    import ansible_runner

    import tempfile

    # our own scratch folder: ansible-runner would leave one behind in /tmp per call
    with tempfile.TemporaryDirectory(prefix="unicorn-inventory-") as scratch:
        try:
            out, err = ansible_runner.get_inventory(
                "list",
                resolved,
                response_format="json",
                quiet=True,
                private_data_dir=scratch,
                envvars={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
                         "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"},
            )
        except Exception as exc:  # ansible-runner reports a failed ansible-inventory this way
            raise InventoryError(f"cannot read inventory {', '.join(sources)}: {_first_line(str(exc))}") from exc
    if not isinstance(out, dict) or "_meta" not in out:
        raise InventoryError(
            f"cannot parse inventory {', '.join(sources)}: {_first_line(err) or 'ansible-inventory gave no hosts'}; "
            "check it with: ansible-inventory -i SOURCE --list"
        )
    hostvars: Dict[str, Dict[str, Any]] = dict(out["_meta"].get("hostvars", {}))
    groups: Dict[str, List[str]] = {}

    def members(group: str, seen: set) -> List[str]:
        if group in seen:
            return []
        seen.add(group)
        entry = out.get(group, {})
        hosts = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            hosts.extend(members(child, seen))
        return hosts

    for group in out:
        if group in ("_meta", "all"):
            continue
        groups[group] = sorted(set(members(group, set())))
    # hosts in the inventory's own order (groups as written, hosts as listed)
    ordered: Dict[str, Dict[str, Any]] = {}
    for host in members("all", set()) + list(hostvars):
        ordered.setdefault(host, hostvars.get(host, {}))
    hostvars = ordered
    if not hostvars:
        raise InventoryError(f"inventory {', '.join(sources)} has no hosts; add at least one host")
    return Inventory(sources=resolved, hostvars=hostvars, groups=groups)


def _first_line(text: str) -> str:
    """The line of Ansible's output that says what is wrong (an error rather than a warning)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in lines:
        if "ERROR" in line or "parse" in line.lower():
            return line.removeprefix("[WARNING]: ").removeprefix("ERROR! ").removeprefix("[ERROR]: ")
    return lines[0].removeprefix("[WARNING]: ") if lines else ""


def gather_architectures(inventory: Inventory, forks: int = 50) -> Dict[str, Architecture]:
    """Ask every host for its system and machine (Ansible's platform facts); unreachable hosts are left out."""
    import tempfile

    ensure_ansible_on_path()
    import ansible_runner

    with tempfile.TemporaryDirectory(prefix="unicorn-facts-") as private:
        inventory_args: Dict[str, Any] = {}
        if inventory.is_default:
            path = Path(private) / "inventory" / "hosts.yml"
            path.parent.mkdir()
            path.write_text(default_inventory_yaml(inventory))
        else:
            inventory_args["inventory"] = list(inventory.sources)
        runner = ansible_runner.run(
            private_data_dir=private,
            host_pattern="all",
            module="ansible.builtin.setup",
            module_args="gather_subset=!all,!min,platform",
            forks=forks,
            quiet=True,
            envvars={"ANSIBLE_PYTHON_INTERPRETER": "auto_silent"},
            **inventory_args,
        )
        found: Dict[str, Architecture] = {}
        for event in runner.events:
            if event.get("event") != "runner_on_ok":
                continue
            data = event.get("event_data", {})
            facts = data.get("res", {}).get("ansible_facts", {})
            found[data.get("host")] = architecture_of(facts.get("ansible_system", ""), facts.get("ansible_machine", ""))
    return found
