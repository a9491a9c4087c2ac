"""What every suite shares: a home folder of the test's own, the proof that the user's real home
folder (~/.unicorn-ansible) gets none of this session's runs or host work folders, and test modules
that need an extra skipped, with the reason, where it is not installed (never a collection error)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Generator, Iterator
from pathlib import Path
from types import TracebackType

import pytest

from unicorn_ansible.home import HOME_ENV

#: the modules of pyproject's `test` extra (and the `netunicorn` one) that test modules import at their
#: top, with the distribution that brings each
EXTRAS = {"netunicorn": "netunicorn-base, netunicorn-library and netunicorn-executor", "pandas": "pandas",
          "IPython": "ipython", "matplotlib": "matplotlib", "requests": "requests", "mitogen": "mitogen",
          "ansiblelint": "ansible-lint"}

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


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A test module whose own import of an extra fails because the extra is not installed is skipped
    with the reason (as ``pytest.importorskip`` would); an import that fails inside unicorn_ansible, or
    of anything else, stays the collection error it is."""
    report = yield
    missing = _missing_extra(collector, report) if report.failed and isinstance(collector, pytest.Module) else None
    if missing is None:
        return report
    extra, line = missing
    reason = f"Skipped: needs {EXTRAS[extra]} (the test extra: pip install -e '.[test]')"
    return pytest.CollectReport(report.nodeid, "skipped", (str(collector.path), line, reason), [])


def _missing_extra(module: pytest.Module, report: pytest.CollectReport) -> tuple[str, int] | None:
    call = getattr(report, "call", None)  # pytest keeps the collection's CallInfo there (see collect_one_node)
    error = call.excinfo.value.__cause__ if call is not None and call.excinfo is not None else None
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    top = error.name.partition(".")[0]
    if top not in EXTRAS or importlib.util.find_spec(top) is not None:
        return None
    where = _importing_line(error.__traceback__)
    return (top, where[1]) if where is not None and where[0] == module.path else None


def _importing_line(trace: TracebackType | None) -> tuple[Path, int] | None:
    """The file and line of the innermost frame outside the import machinery: the import that failed."""
    found = None
    while trace is not None:
        name = trace.tb_frame.f_code.co_filename
        if not name.startswith("<frozen importlib"):
            found = (Path(name), trace.tb_lineno)
        trace = trace.tb_next
    return found
