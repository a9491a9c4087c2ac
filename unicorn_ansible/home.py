"""Where unicorn-ansible keeps its state on the controller.

The home folder holds one run folder per experiment run (``runs/<name>``, laid out
by ``engine/rundir.py``), the cached executor bundles (``bundles/``), the local
testbed's state (``testbed/``), the campaigns' state (``campaigns/<name>``, laid out by
``campaign/store.py``) and, for the embedded default inventory, the local
machine's host work folders (``hosts/localhost/``). It is ``~/.unicorn-ansible`` unless
the environment variable ``UNICORN_ANSIBLE_HOME`` names another folder.

Everything in it is its user's alone: ``runs/`` and every run folder are 0700, and what is
written into a run folder (by unicorn-ansible, ansible-runner, ansible-playbook and its
callback) is 0600, written under :func:`private_files`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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


def campaigns_dir() -> Path:
    return home_dir() / "campaigns"


def testbed_dir() -> Path:
    return home_dir() / "testbed"


#: the umask while a run folder is written: no permission for the group or others
PRIVATE_UMASK = 0o077


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Files and folders created meanwhile (by this process and its children) are the user's alone."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def make_private_dir(path: Path) -> Path:
    """``path`` as a folder only its user can use (created with its parents, or tightened)."""
    path = Path(path)
    with private_files():
        path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path
