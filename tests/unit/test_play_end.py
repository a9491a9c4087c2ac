"""A play's end: ansible-playbook's terminal is closed without pexpect's 0.1 s pause once it has exited."""

from __future__ import annotations

import time

import pexpect

from unicorn_ansible.engine.lifecycle import _close_ended_plays_at_once


def test_an_ended_child_is_closed_at_once_and_a_live_one_still_ended() -> None:
    _close_ended_plays_at_once()
    _close_ended_plays_at_once()  # once is enough: a second call changes nothing
    ended = pexpect.spawn("true", encoding="utf-8")
    while ended.isalive():  # as ansible-runner waits for ansible-playbook
        ended.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=1)
    started = time.perf_counter()
    ended.close()
    assert time.perf_counter() - started < 0.05 and ended.exitstatus == 0
    live = pexpect.spawn("sleep", ["30"], encoding="utf-8")
    live.close(force=True)
    assert not live.isalive() and live.signalstatus is not None
