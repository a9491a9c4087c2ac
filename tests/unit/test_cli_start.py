"""The command's start: the inventory given with -i is read while the rest of the program loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from unicorn_ansible.ansible import inventory_list
from unicorn_ansible.inventory import load_inventory
from unicorn_ansible.ui.main import inventory_sources


@pytest.mark.parametrize(("argv", "sources"), [
    (["run", "lab.py", "-i", "a.ini", "--inventory", "b", "--inventory=c", "-id"], ["a.ini", "b", "c", "d"]),
    (["compile", "lab.py", "-i", "a.ini", "-o", "out"], ["a.ini"]),
    (["nodes", "-i", "a.ini"], ["a.ini"]),
    (["run", "lab.py"], []),  # the embedded default: no reader
    (["results", "-i", "a.ini"], []),  # not a command that reads the inventory first thing
    (["--version"], []),
])
def test_the_sources_are_found_in_the_command_line(argv: list[str], sources: list[str]) -> None:
    assert inventory_sources(argv) == sources


def test_a_prefetched_inventory_is_the_one_loaded(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[lab]\nh1 ansible_host=10.0.0.1 rate=10\n")
    inventory_list.prefetch([str(inventory)])
    assert list(inventory_list._STARTED) == [(str(inventory.resolve()),)]
    loaded = load_inventory([str(inventory)])
    assert loaded.hostvars["h1"]["rate"] == 10 and not inventory_list._STARTED


def test_a_missing_source_is_not_prefetched_and_a_reader_left_uncollected_ends_with_the_program(
        tmp_path: Path) -> None:
    inventory_list.prefetch([str(tmp_path / "missing.ini")])
    assert not inventory_list._STARTED
    (tmp_path / "hosts.ini").write_text("h1\n")
    code = ("import sys; from unicorn_ansible.ansible import inventory_list as r; "
            f"r.prefetch([{str(tmp_path / 'hosts.ini')!r}]); print(list(r._STARTED.values())[0].pid)")
    pid = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def test_a_folder_named_ansible_where_the_command_runs_does_not_hide_ansible(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ansible").mkdir()  # a package named ansible where the command runs
    (tmp_path / "ansible" / "__init__.py").write_text("")
    (tmp_path / "hosts.ini").write_text("[lab]\nh1 rate=10\n")
    monkeypatch.chdir(tmp_path)
    assert load_inventory(["hosts.ini"]).hostvars["h1"]["rate"] == 10


_PROBE = ("import sys; from unicorn_ansible.ui.main import main\n"
          "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
          "print('netunicorn loaded' if 'netunicorn.base' in sys.modules else 'netunicorn not loaded')\n")


def _compile(tmp_path: Path, experiment: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _PROBE, "compile", str(experiment), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_an_experiment_that_does_not_name_netunicorn_runs_without_loading_it(tmp_path: Path) -> None:
    pytest.importorskip("netunicorn.base")
    experiment = tmp_path / "plain.py"
    experiment.write_text("from unicorn_ansible import Experiment, Pipeline, Task\n\n\nclass T(Task):\n"
                          "    def run(self):\n        return 1\n\n\ndef experiment(nodes):\n"
                          "    return Experiment().map(Pipeline().then(T(name='t')), nodes.take(1))\n")
    done = _compile(tmp_path, experiment)
    assert done.returncode == 0, done.stderr
    assert "compiled 1 node" in done.stdout and done.stdout.strip().endswith("netunicorn not loaded")


def test_an_experiment_whose_own_module_uses_netunicorn_loads_it_in_the_same_process(tmp_path: Path) -> None:
    pytest.importorskip("netunicorn.library")
    (tmp_path / "helper.py").write_text("from netunicorn.base import Pipeline\nfrom netunicorn.library.tasks.basic "
                                        "import SleepTask\n\n\ndef pipeline():\n    return Pipeline().then(SleepTask(0))\n")
    experiment = tmp_path / "indirect.py"  # never names it: its helper module does
    experiment.write_text("import helper\nfrom unicorn_ansible import Experiment\n\n\ndef experiment(nodes):\n"
                          "    return Experiment().map(helper.pipeline(), nodes.take(1))\n")
    done = _compile(tmp_path, experiment)
    assert done.returncode == 0, done.stderr
    assert "compiled 1 node" in done.stdout and done.stdout.strip().endswith("netunicorn loaded")
