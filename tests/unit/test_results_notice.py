"""A node's deployment notice as the results carry it: from the host, so bounded and plain."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicorn_ansible.node.wire import DeployReport, NodeStatusRecord, WireError
from unicorn_ansible.results.load import NodeResult, RunResults, deploy_notice


def _status(fields: dict) -> NodeStatusRecord:
    return NodeStatusRecord.from_untrusted(fields, "status.json", lenient=True)


def _report(fields: dict) -> DeployReport:
    return DeployReport.from_untrusted(fields, "deploy-report.json")


def test_the_callbacks_notice_wins_and_the_deploy_report_is_the_fallback() -> None:
    assert deploy_notice(_status({"deploy": {"notice": "as ShellExecution"}}), _report({"notice": "other"})) == \
        "as ShellExecution"
    assert deploy_notice(_status({"deploy": {"ok": True}}), _report({"notice": "from the report"})) == "from the report"
    assert deploy_notice(_status({}), None) is None


def test_a_hostile_notice_is_one_bounded_line_or_nothing() -> None:
    assert deploy_notice(_status({"deploy": {"notice": "a\nb\r\n  c"}}), None) == "a b c"
    assert len(deploy_notice(_status({"deploy": {"notice": "x" * 100_000}}), None) or "") == 1000
    assert deploy_notice(_status({"deploy": {"notice": {"not": "text"}}}), None) is None
    with pytest.raises(WireError, match="notice"):  # what a host sends is refused whole, naming the field
        _report({"notice": ["no"]})
    assert deploy_notice(_status({"deploy": ["not", "a", "dict"]}), _report({"notice": "   "})) is None


def test_the_notice_is_in_the_results_json_and_escaped_in_jupyter() -> None:
    node = NodeResult("h1", "ok", True, None, notice="runs <b>as</b> ShellExecution")
    assert node.to_dict()["notice"] == "runs <b>as</b> ShellExecution"
    html = RunResults("r", Path("."), [node], "finished")._repr_html_()
    assert "notice: runs &lt;b&gt;as&lt;/b&gt; ShellExecution" in html
