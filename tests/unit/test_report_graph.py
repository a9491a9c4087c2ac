"""The report's drawing of a node's plan: a Pipeline's stages in columns, joined stage to stage."""

from __future__ import annotations

from unicorn_ansible import Pipeline, Task
from unicorn_ansible.ui.report_graph import draw_graph


class Step(Task):
    def run(self) -> int:
        return 1


def test_a_pipeline_is_drawn_stage_by_stage_with_its_outcomes() -> None:
    pipeline = Pipeline().then(Step(name="a")).then([Step(name="b"), Step(name="c")])
    drawing = draw_graph(pipeline, [{"name": "a", "kind": "ok"}, {"name": "b", "kind": "failure"}])
    assert drawing is not None
    vertices, edges = drawing["vertices"], drawing["edges"]
    assert [v["label"] for v in vertices] == ["a", "b", "c"]  # type: ignore[index, union-attr]
    assert [v["outcome"] for v in vertices] == ["ok", "failed", "not run"]  # type: ignore[index, union-attr]
    assert len(edges) == 2  # type: ignore[arg-type]
