"""Where the package's data lives: playbook templates, roles, inventories, the callback plugin,
the node package.

In a source checkout (and an editable install) ``playbooks/``, ``roles/`` and
``inventories/`` sit at the top of the tree; an installed wheel carries them inside
the package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"unicorn-ansible's {name}/ folder is missing from {PACKAGE_DIR}; reinstall the package"
    )


def playbooks_dir() -> Path:
    return _data_dir("playbooks")


def roles_dir() -> Path:
    return _data_dir("roles")


def inventories_dir() -> Path:
    """``local/`` (the embedded default), ``examples/`` and ``testbed/`` (the testbed's template)."""
    return _data_dir("inventories")


def ui_templates_dir() -> Path:
    """The templates of what the UI writes (the HTML report), inside the package."""
    return PACKAGE_DIR / "ui" / "templates"


def callback_plugin() -> Path:
    return PACKAGE_DIR / "ansible" / "unicorn_collector.py"


def node_package_dir() -> Path:
    """The node package: what runs on hosts, shipped in the bundle."""
    return PACKAGE_DIR / "node"
