"""Where a run's Unix sockets live on the controller: folders only this user can use.

A Unix socket path is limited to about 100 bytes, too few for a run folder, so a run's
sockets (its flag store's, its SSH masters') live under a short base: ``$XDG_RUNTIME_DIR``
when it is private and short, else the temporary folder (``/tmp``), which every local user
can write in. A socket folder there is dangerous unless it is ours: another user who makes
it first (mode 0777, a fake SSH master inside) would be handed the run's sessions: the host
commands, their standard input (where Ansible types the become password) and their answers.

So every such folder is created by us, 0700, and checked before each use (a folder, not a
link, owned by us, no permission for anyone else); one that is not is refused with one line
naming it and the fix, never used. The SSH control folders are kept inside this user's own
folder (``unicorn-ansible-<uid>``, itself created and checked so), where no one else can
create anything: their names need not be secret.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from ..errors import RunError

#: a Unix socket path is limited to about 100 bytes (108 on Linux, with the terminating NUL)
MAX_SOCKET_PATH = 100
#: what the base may take of it: the rest is for a folder name, a socket name and ssh's suffix
_MAX_BASE = MAX_SOCKET_PATH - 60
_FIX = "remove it (as its owner, or root), or set XDG_RUNTIME_DIR to a private folder, and run again"


def private_folder(folder: Path) -> bool:
    """Whether ``folder`` is a folder (not a link) of this user's that no one else can use."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def socket_base() -> Path:
    """Where the run's sockets go: $XDG_RUNTIME_DIR when it is private and short, else the temporary folder."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and private_folder(Path(runtime)) and len(runtime) < _MAX_BASE:
        return Path(runtime)
    return Path(tempfile.gettempdir())


def _described(folder: Path) -> str:
    try:
        info = os.lstat(folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    kind = "a link, " if stat.S_ISLNK(info.st_mode) else ""
    return f"{kind}owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)}"


def own_folder(folder: Path, what: str) -> Path:
    """Create ``folder`` 0700, or accept it only if it is ours and private already; ``what`` names it
    in the one-line RunError otherwise."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    if not private_folder(folder):
        raise RunError(f"refusing {what} {folder} ({_described(folder)}): it must be a folder only you "
                       f"can use; {_FIX}")
    return folder


def _check_base(base: Path) -> None:
    """A base others can write in must be sticky (as /tmp is): else one could rename our folder away."""
    try:
        info = os.stat(base)
    except OSError as exc:
        raise RunError(f"the socket folder's base {base} cannot be used ({exc.strerror or exc}); "
                       "set TMPDIR or XDG_RUNTIME_DIR to a folder that exists") from None
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise RunError(f"refusing the socket folder's base {base} (mode {stat.filemode(info.st_mode)}): others can "
                       "write in it and it has no sticky bit; set TMPDIR or XDG_RUNTIME_DIR to a private folder")


def user_folder_path() -> Path:
    """This user's own folder for run sockets, ``<base>/unicorn-ansible-<uid>`` (not created here)."""
    return socket_base() / f"unicorn-ansible-{os.getuid()}"


def user_folder() -> Path:
    """This user's own folder for run sockets, created and checked (a RunError if it is not ours)."""
    folder = user_folder_path()
    _check_base(folder.parent)
    return own_folder(folder, "your socket folder")
