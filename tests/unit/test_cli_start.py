"""The command's start: the inventory given with -i is read while the rest of the program loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from unicorn_ansible.ansible import inventory_list
from unicorn_ansible.inventory import load_inventory
from unicorn_ansible.ui import cli
from unicorn_ansible.ui.main import names_an_inventory


@pytest.mark.parametrize(("argv", "sources"), [
    (["run", "lab.py", "-i", "a.ini", "--inventory", "b", "--inventory=c", "-id"], ["a.ini", "b", "c", "d"]),
    (["compile", "lab.py", "-i", "a.ini", "-o", "out", "--name", "-i"], ["a.ini"]),  # --name's value is no -i
    (["nodes", "-i", "a.ini"], ["a.ini"]),
    (["run", "lab.py"], []),  # the embedded default: no reader
])
def test_click_hands_the_reader_the_sources_it_parsed(argv: list[str], sources: list[str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for source in "a.ini", "b", "c", "d":
        (tmp_path / source).write_text("h1\n")
    monkeypatch.chdir(tmp_path)
    started: list[list[str]] = []
    monkeypatch.setattr(inventory_list, "start", started.append)
    command = cli.cli.commands[argv[0]]
    command.make_context(argv[0], argv[1:])  # parsed as the command would be, not run
    assert started == ([[str(tmp_path / source) for source in sources]] if sources else [])


def test_every_command_that_takes_an_inventory_reads_it_first() -> None:
    """The prefetch is the -i option's own: a command that takes -i (run, compile, nodes, and any
    added later) starts the reader as click parses it."""
    takes = {name for name, command in cli.cli.commands.items()
             if any("--inventory" in getattr(param, "opts", ()) for param in command.params)}
    assert {"run", "compile", "nodes"} <= takes
    for name in takes:
        (option,) = [p for p in cli.cli.commands[name].params if "--inventory" in getattr(p, "opts", ())]
        assert option.is_eager and option.callback is not None, name


@pytest.mark.parametrize(("argv", "names"), [
    (["run", "lab.py", "-i", "a.ini"], True), (["nodes", "--inventory=a"], True), (["run", "lab.py", "-ia"], True),
    (["run", "lab.py"], False), (["status", "r1"], False), (["--version"], False),
])
def test_a_command_line_naming_an_inventory_warms_a_reader_up(argv: list[str], names: bool) -> None:
    assert names_an_inventory(argv) is names


def test_a_warm_reader_reads_the_sources_it_is_given_later(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[lab]\nh1 ansible_host=10.0.0.1 rate=10\n")
    inventory_list.warm_up()
    [(warm, _)] = inventory_list._WARM
    inventory_list.prefetch([str(inventory)])
    assert not inventory_list._WARM and list(inventory_list._STARTED.values()) == [warm]
    assert load_inventory([str(inventory)]).hostvars["h1"]["rate"] == 10 and not inventory_list._STARTED
    inventory_list.warm_up()  # one given nothing ends with the program
    [(unused, _)] = inventory_list._WARM
    inventory_list._stop_uncollected()
    assert unused.returncode is not None and not inventory_list._WARM


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
