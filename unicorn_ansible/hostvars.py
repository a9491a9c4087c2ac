"""Host variables as Ansible would use them: secrets recognised, templated values rendered by Ansible.

``ansible-inventory --list`` gives values as written, so ``peer: "{{ hostvars['h2']['ansible_host'] }}"``
would reach a node as that text. Where some host has such a value, Ansible's own templating renders
it (``ansible/inventory_list.py``, in the process that reads the inventory): hostvars, groups,
filters and lookups that work on the controller, as a play's ``debug`` task would. Secrets are
never rendered (they never become properties).

This module imports nothing heavy: the inventory reader uses it before anything else is loaded.
"""

from __future__ import annotations

import re
from typing import Any

# Variable names whose values are secrets: a part of the name (split at _ - . and case changes)
# holding one of these words (api_key, aws_access_key_id, db_credentials, github_token,
# ansible_become_pass, ssl_cert, vault_password_file), or ending in "pass" (sshpass, dbpass,
# rootpass; not English words such as bypass or compass). Their values never become node
# properties and never reach a run folder; vault-encrypted values neither, whatever their name.
_SECRET_WORDS = ("key", "token", "secret", "credential", "password", "passwd", "passphrase", "private", "vault",
                 "cert")
_NOT_A_PASS = frozenset({"bypass", "compass", "encompass", "overpass", "underpass", "surpass", "trespass"})
_NAME_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_name(name: str) -> bool:
    parts = [part.lower() for part in _NAME_PARTS.findall(name)]
    return any((part.endswith("pass") and part not in _NOT_A_PASS) or any(word in part for word in _SECRET_WORDS)
               for part in parts)


def is_vault_encrypted(value: Any) -> bool:
    if isinstance(value, dict) and "__ansible_vault" in value:
        return True
    return type(value).__name__ in ("AnsibleVaultEncryptedUnicode", "EncryptedString") or (
        isinstance(value, str) and value.lstrip().startswith("$ANSIBLE_VAULT"))


def is_secret(name: str, value: Any) -> bool:
    return is_secret_name(str(name)) or is_vault_encrypted(value)


def is_templated(value: Any) -> bool:
    """Whether ``value`` (or anything inside it) holds a Jinja expression Ansible would render."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_templated(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_templated(item) for item in value)
    return False


def to_render(hostvars: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per host, the names of its templated values that are not secrets (the ones to render)."""
    templated = {host: [name for name, value in variables.items() if not is_secret(name, value) and is_templated(value)]
                 for host, variables in hostvars.items()}
    return {host: names for host, names in templated.items() if names}


def render_failure(host: str, name: str, message: str) -> str:
    """What the user reads when a value cannot be rendered."""
    first = (message or "it failed").strip().splitlines()[0] if (message or "").strip() else "it failed"
    return (f"inventory variable {name} of host {host} cannot be rendered: {first}; "
            "fix its value in the inventory (facts are not gathered: use host vars)")
