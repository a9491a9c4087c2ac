"""A node's deployment notice as the results carry it: from the host, so bounded and plain."""

from __future__ import annotations

from pathlib import Path

from unicorn_ansible.results.load import NodeResult, RunResults, deploy_notice


def test_the_callbacks_notice_wins_and_the_deploy_report_is_the_fallback() -> None:
    assert deploy_notice({"deploy": {"notice": "as ShellExecution"}}, {"notice": "other"}) == "as ShellExecution"
    assert deploy_notice({"deploy": {"ok": True}}, {"notice": "from the report"}) == "from the report"
    assert deploy_notice({}, {}) is None


def test_a_hostile_notice_is_one_bounded_line_or_nothing() -> None:
    assert deploy_notice({"deploy": {"notice": "a\nb\r\n  c"}}, {}) == "a b c"
    assert len(deploy_notice({"deploy": {"notice": "x" * 100_000}}, {}) or "") == 1000
    assert deploy_notice({"deploy": {"notice": {"not": "text"}}}, {"notice": ["no"]}) is None
    assert deploy_notice({"deploy": ["not", "a", "dict"]}, {"notice": "   "}) is None


def test_the_notice_is_in_the_results_json_and_escaped_in_jupyter() -> None:
    node = NodeResult("h1", "ok", True, None, notice="runs <b>as</b> ShellExecution")
    assert node.to_dict()["notice"] == "runs <b>as</b> ShellExecution"
    html = RunResults("r", Path("."), [node], "finished")._repr_html_()
    assert "notice: runs &lt;b&gt;as&lt;/b&gt; ShellExecution" in html
