"""Where unicorn-ansible keeps its state on the controller.

The home folder holds one run folder per experiment run (``runs/<name>``, laid out
by ``engine/rundir.py``), the cached executor bundles (``bundles/``), the local
testbed's state (``testbed/``) and, for the embedded default inventory, the local
machine's host work folders (``hosts/localhost/``). It is ``~/.unicorn-ansible`` unless
the environment variable ``UNICORN_ANSIBLE_HOME`` names another folder.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "UNICORN_ANSIBLE_HOME"


def home_dir() -> Path:
    """The home folder (not created here)."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".unicorn-ansible"


def runs_dir() -> Path:
    return home_dir() / "runs"


def testbed_dir() -> Path:
    return home_dir() / "testbed"
