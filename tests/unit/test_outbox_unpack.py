"""An outbox fetched from a host is untrusted: only the executor's own file names, as regular files,
land in the node's folder; nothing outside it is written."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from unicorn_ansible.results.load import unpack_outbox


def _outbox(folder: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
    (folder / "outbox.tar").write_bytes(buffer.getvalue())


def test_names_that_leave_the_node_folder_links_and_other_files_are_not_taken(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "r" / "nodes" / "evil"
    folder.mkdir(parents=True)
    link = tarfile.TarInfo("logs/link.log")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("state.json")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    _outbox(folder, [("../../../outside.txt", b"escaped"), ("logs/../../../outside.txt", b"escaped"),
                     ("logs/a/../../../../outside.txt", b"escaped"), (str(tmp_path / "absolute.txt"), b"escaped"),
                     ("run.py", b"not the executor's"), link, hard,
                     ("journal", b"kept"), ("logs/00000-task.log", b"kept")])
    unpack_outbox(folder)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() or p.is_symlink())
    assert written == ["runs/r/nodes/evil/.outbox-unpacked", "runs/r/nodes/evil/journal",
                       "runs/r/nodes/evil/logs/00000-task.log", "runs/r/nodes/evil/outbox.tar"]


def test_the_controller_s_disk_full_while_unpacking_is_named_and_the_outbox_kept(tmp_path: Path) -> None:
    import os
    import subprocess

    import pytest

    from unicorn_ansible.results.outbox import ControllerWriteError

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "runs" / "r" / "nodes" / "full"
    folder.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], check=True)
    try:
        _outbox(folder, [("journal", os.urandom(200_000))])  # fits; unpacked beside it, it does not
        with pytest.raises(ControllerWriteError, match=r"the controller could not write .*journal: No space left"):
            unpack_outbox(folder)
        assert (folder / "outbox.tar").stat().st_size > 200_000 and not (folder / "journal").exists()
    finally:
        subprocess.run(["umount", str(folder)], check=False)
