"""Host variables as Ansible would use them: templated values rendered by Ansible itself.

``ansible-inventory --list`` gives values as written, so ``peer: "{{ hostvars['h2']['ansible_host'] }}"``
would reach a node as that text. Where some host has such a value, one play of ``debug`` tasks
(an action that runs on the controller and never connects to a host) renders each of them with
Ansible's own templating: hostvars, groups, filters and lookups that work on the controller.
Secrets are never rendered (they never become properties).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from .errors import InventoryError

#: the play's variable that holds the names to render (one list for every host)
_NAMES = "unicorn_render_names"


def is_templated(value: Any) -> bool:
    """Whether ``value`` (or anything inside it) holds a Jinja expression Ansible would render."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_templated(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_templated(item) for item in value)
    return False


def _play(hosts: list[str], names: list[str]) -> str:
    return json.dumps([{
        "name": "Render templated host variables",
        "hosts": hosts,
        "gather_facts": False,
        "vars": {_NAMES: names},
        "tasks": [{
            "name": "Render one variable",
            "ansible.builtin.debug": {"msg": "{{ lookup('ansible.builtin.vars', item) }}"},
            "loop": f"{{{{ {_NAMES} }}}}",
            "when": "item in hostvars[inventory_hostname]",
        }],
    }], indent=1)


def render_templated(sources: list[str], templated: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Render the variables ``templated`` names per host; host -> name -> rendered value.
    A value that fails to render is an InventoryError naming the host and the variable."""
    from .inventory import ensure_ansible_on_path

    ensure_ansible_on_path()
    import ansible_runner

    names = sorted({name for host_names in templated.values() for name in host_names})
    with tempfile.TemporaryDirectory(prefix="unicorn-hostvars-") as scratch:
        (Path(scratch) / "project").mkdir()
        (Path(scratch) / "project" / "render.yml").write_text(_play(sorted(templated), names))
        runner = ansible_runner.run(
            private_data_dir=scratch, playbook="render.yml", inventory=list(sources), quiet=True,
            envvars={"ANSIBLE_PYTHON_INTERPRETER": "auto_silent", "ANSIBLE_GATHERING": "explicit"},
        )
        return _rendered(runner.events, templated)


def _rendered(events: Any, templated: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    rendered: dict[str, dict[str, Any]] = {host: {} for host in templated}
    for event in events:
        data = event.get("event_data", {})
        host, result = data.get("host"), data.get("res") or {}
        name = result.get("item")
        if host not in templated or name not in templated[host]:
            continue
        if event.get("event") == "runner_item_on_ok":
            rendered[host][name] = result.get("msg")
        elif event.get("event") == "runner_item_on_failed":
            message = str(result.get("msg") or "it failed").splitlines()[0]
            raise InventoryError(f"inventory variable {name} of host {host} cannot be rendered: {message}; "
                                 "fix its value in the inventory (facts are not gathered: use host vars)")
    return rendered
