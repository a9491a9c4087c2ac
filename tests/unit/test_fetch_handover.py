"""The role's unicorn_fetch with become: the become user's shell command that hands a file over."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

from unicorn_ansible.resources import roles_dir


def _plugin():
    path = roles_dir() / "unicorn" / "action_plugins" / "unicorn_fetch.py"
    spec = importlib.util.spec_from_file_location("unicorn_fetch_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sh(command: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=False,
                          env=dict(os.environ, HOME=str(home)))


def test_the_copy_lands_in_the_folder_as_the_login_users_file_whatever_the_path(tmp_path: Path) -> None:
    plugin = _plugin()
    home, folder = tmp_path / "home dir", tmp_path / "handover"
    source = home / ".unicorn-ansible" / "runs" / "it's $HOME `x`" / "outbox.tar"
    source.parent.mkdir(parents=True)
    source.write_bytes(bytes(range(256)) * 1000)
    folder.mkdir(mode=0o700)
    relative = "~/" + str(source.relative_to(home))
    done = _sh(plugin._copy_command(relative, str(folder), str(os.getuid())), home)
    assert done.returncode == 0, done.stderr
    copy = Path(done.stdout.strip())
    assert copy.parent == folder and copy.read_bytes() == source.read_bytes()
    assert copy.stat().st_uid == os.getuid() and copy.stat().st_mode & 0o077 == 0


def test_a_missing_file_is_told_apart(tmp_path: Path) -> None:
    plugin = _plugin()
    done = _sh(plugin._copy_command(str(tmp_path / "absent"), str(tmp_path), str(os.getuid())), tmp_path)
    assert done.returncode == plugin.MISSING_RC and not list(tmp_path.iterdir())
