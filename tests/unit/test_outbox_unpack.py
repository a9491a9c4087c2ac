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
