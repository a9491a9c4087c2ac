"""A play's end: ansible-playbook's terminal is closed without pexpect's 0.1 s pause once it has exited,
by our plays' own copy of ansible-runner's Runner.run; pexpect and ansible-runner stay as they are."""

from __future__ import annotations

import time
from pathlib import Path

import ansible_runner.runner
import pexpect

from unicorn_ansible.engine.drivers import _closing_ended_plays_at_once, _pexpect_closing_at_once


def test_an_ended_child_is_closed_at_once_and_a_live_one_still_ended() -> None:
    spawn = _pexpect_closing_at_once().spawn
    ended = spawn("true", encoding="utf-8")
    while ended.isalive():  # as ansible-runner waits for ansible-playbook
        ended.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=1)
    started = time.perf_counter()
    ended.close()
    assert time.perf_counter() - started < 0.05 and ended.exitstatus == 0
    live = spawn("sleep", ["30"], encoding="utf-8")
    live.close(force=True)
    assert not live.isalive() and live.signalstatus is not None


def test_our_runner_sees_the_closing_child_and_nothing_else_in_the_process_changes(tmp_path: Path) -> None:
    before = (pexpect.spawn, ansible_runner.runner.pexpect, ansible_runner.runner.Runner.run)
    run = _closing_ended_plays_at_once()
    assert run is _closing_ended_plays_at_once()  # made once
    assert run.__code__ is ansible_runner.runner.Runner.run.__code__  # ansible-runner's own code ...
    assert issubclass(run.__globals__["pexpect"].spawn, pexpect.spawn)  # ... seeing our child
    assert run.__globals__["pexpect"].EOF is pexpect.EOF  # and pexpect's other names as they are
    assert (pexpect.spawn, ansible_runner.runner.pexpect, ansible_runner.runner.Runner.run) == before
    assert ansible_runner.runner.pexpect is pexpect
