"""What every suite shares: a home folder of the test's own, and the proof that the user's
real home folder (~/.unicorn-ansible) gets none of this session's runs or host work folders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from unicorn_ansible.home import HOME_ENV

REAL_HOME = Path.home() / ".unicorn-ansible"


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """UNICORN_ANSIBLE_HOME in the test's folder: its runs, bundles and (for the embedded
    default inventory, whose host work root is the home folder) the local host's work folders."""
    home = tmp_path / "ua-home"
    monkeypatch.setenv(HOME_ENV, str(home))
    return home


def _session_runs(base: Path) -> tuple[set[str], set[str]]:
    """The run ids and run names this session made (from the run folders under its temporary folder)."""
    ids = {path.name for path in base.glob("**/hosts/*/runs/*")}
    names = set()
    for record in base.glob("**/runs/*/run.json"):
        try:
            ids.add(json.loads(record.read_text())["run_id"])
            names.add(record.parent.name)
        except (OSError, ValueError, KeyError):
            continue
    return ids, names


def _leaked(ids: set[str], names: set[str]) -> list[Path]:
    leaked = [path for path in REAL_HOME.glob("hosts/*/runs/*") if path.name in ids]
    for record in REAL_HOME.glob("runs/*/run.json"):
        try:
            if record.parent.name in names and json.loads(record.read_text()).get("run_id") in ids:
                leaked.append(record.parent)
        except (OSError, ValueError):
            continue
    return leaked


@pytest.fixture(scope="session", autouse=True)
def real_home_untouched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    leaked = _leaked(*_session_runs(tmp_path_factory.getbasetemp()))
    assert not leaked, f"tests wrote into the real home folder {REAL_HOME}: {', '.join(map(str, leaked))}"
