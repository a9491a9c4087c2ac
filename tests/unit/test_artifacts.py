"""Artifacts: the node's manifest, and the controller's checks of what a host offers."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from unicorn_ansible.node.artifacts import TaskFolders, write_manifest
from unicorn_ansible.node.protocol import ARTIFACTS_MANIFEST, NODE_SPEC, OUTBOX, artifact_folder
from unicorn_ansible.results.artifacts import ArtifactFetch, Budget, load_artifacts, parse_size, safe_parts


def test_the_manifest_lists_task_folders_and_declared_globs_and_leaves_links(tmp_path: Path) -> None:
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    (scratch / "deep" / "er").mkdir(parents=True)
    (scratch / "deep" / "er" / "x.log").write_text("x")
    (scratch / "one.pcap").write_bytes(b"p" * 10)
    work.mkdir()
    (work / NODE_SPEC).write_text(json.dumps({"artifacts": {"declared": [
        {"task": "cap", "pattern": str(scratch / "one.pcap")},
        {"task": None, "pattern": str(scratch / "**" / "*.log")}]}}))
    folder = Path(TaskFolders(str(work)).folder_for("a/b"))
    (folder / "name with\nnewline").write_text("n")
    (folder / "link").symlink_to("/etc/passwd")
    entries = {(e.get("task"), e["path"]): e for e in write_manifest(str(work)).to_json()["artifacts"]}
    assert set(entries) == {("a/b", "name with\nnewline"), ("a/b", "link"), ("cap", "one.pcap"),
                            (None, "deep/er/x.log")}
    assert "symbolic link" in entries[("a/b", "link")]["left"]
    pcap = entries[("cap", "one.pcap")]
    assert pcap["size"] == 10 and pcap["sha256"] == hashlib.sha256(b"p" * 10).hexdigest()
    assert (work / pcap["transfer"]).read_bytes() == b"p" * 10


def test_files_of_one_name_from_different_folders_all_come_home(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "out.log").write_text(folder)
    declared = [str(tmp_path / folder / "out.log") for folder in ("a", "b", "c")] + [str(tmp_path / "a" / "*.log")]
    (work / NODE_SPEC).write_text(json.dumps({"artifacts": {"declared": [
        {"task": None, "pattern": pattern} for pattern in declared]}}))
    for _ in range(2):  # the same names every time: a repeated collect knows them
        entries = {e["path"]: e for e in write_manifest(str(work)).to_json()["artifacts"]}
        assert {path: (work / e["transfer"]).read_text() for path, e in entries.items()} == \
            {"out.log": "a", "out~2.log": "b", "out~3.log": "c"}  # a/out.log matched twice: listed once


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\0b"])
def test_paths_that_could_leave_the_folder_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        safe_parts(path)


def test_task_folders_never_name_a_parent_and_never_two_tasks() -> None:
    """Issue 28 item 12: the task name -> folder mapping is injective (a changed name gets a hash)."""
    names = [None, "..", "_..", ".", "_.", "", "_", "a/b", "a_b", "a\0b", "../../x", ".._.._x", "_pipeline",
             "x~y", "x~y~0", "ü" * 150, "ü" * 151, "ünï côdé", "a" * 200, "a" * 201]
    folders = [artifact_folder(name) for name in names]
    assert len(set(folders)) == len(names), folders
    assert all(f not in ("", ".", "..") and "/" not in f and "\0" not in f and len(f.encode()) <= 255 for f in folders)
    assert artifact_folder(None) == "_pipeline" and artifact_folder("ünï côdé") == "ünï côdé"
    assert artifact_folder("a_b") == "a_b" and artifact_folder("a/b").startswith("a_b~")
    assert artifact_folder("_..") == "_.." and artifact_folder("..").startswith("..~")


def _outbox(folder: Path, entries: list) -> None:
    data = json.dumps({"artifacts": entries}).encode()
    with tarfile.open(folder / OUTBOX, "w") as archive:
        info = tarfile.TarInfo(ARTIFACTS_MANIFEST)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def test_a_hostile_list_is_refused_entry_by_entry_and_links_at_home_are_not_followed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    node = run / "nodes" / "h1"
    node.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"options": {"artifact_cap": 100}}))
    (node / "artifacts").mkdir()
    (node / "artifacts" / "evil").symlink_to(tmp_path)  # as if planted: never followed
    good = {"size": 3, "sha256": "0" * 64, "transfer": "outgoing/0"}
    _outbox(node, [dict(good, task="t", path="../../escape"), dict(good, task="t", path="/abs"),
                   dict(good, task="evil", path="x"), dict(good, task="t", path="ok", transfer="../../etc"),
                   dict(good, task="t", path="fine"), dict(good, task="t", path="big", size=1000), "junk"])
    fetch = ArtifactFetch.for_outbox(node / OUTBOX)
    jobs = list(fetch.jobs())
    assert [job.offer.path for job in jobs] == ["fine"]
    jobs[0].part.write_bytes(b"abc")
    fetch.fetched(jobs[0])
    fetch.save()
    listed = {a.path: a for a in load_artifacts(run, "h1")}
    assert listed["fine"].file == "nodes/h1/artifacts/t/fine" and listed["fine"].size == 3
    for path in ("../../escape", "/abs", "x", "ok"):
        assert listed[path].left.startswith("refused") and listed[path].file is None
    assert "artifact cap" in listed["big"].left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_two_fetches_of_one_node_at_once_keep_both_their_files_in_the_index(tmp_path: Path) -> None:
    # a cancel from another terminal and the run's own last call fetch the same node together:
    # the one saving last must not write back the empty index it read before the other saved
    run = tmp_path / "run"
    node = run / "nodes" / "h1"
    node.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({}))
    offer = {"size": 3, "sha256": hashlib.sha256(b"abc").hexdigest(), "transfer": "outgoing/0", "task": "t"}
    one, other = ArtifactFetch.for_outbox(node / OUTBOX), ArtifactFetch.for_outbox(node / OUTBOX)
    for fetch, path in ((one, "first"), (other, "second")):
        _outbox(node, [dict(offer, path=path, source=f"/host/{path}")])
        (job,) = fetch.jobs()
        job.part.write_bytes(b"abc")
        fetch.fetched(job)
    one.save()
    other.save()
    assert sorted(a.path for a in load_artifacts(run, "h1")) == ["first", "second"]


def test_the_cap_is_shared_by_every_node(tmp_path: Path) -> None:
    budget = Budget(tmp_path, 10)
    assert budget.reserve("a", 6) and not budget.reserve("b", 6) and budget.reserve("a", 7)
    budget.release("a")
    assert budget.reserve("b", 10)


def test_sizes_are_read_as_people_write_them() -> None:
    assert parse_size("500M") == 500 * 1024**2 and parse_size("2G") == 2 * 1024**3 and parse_size("1000") == 1000
    assert parse_size("1.5GB") == int(1.5 * 1024**3)
    with pytest.raises(ValueError):
        parse_size("lots")
