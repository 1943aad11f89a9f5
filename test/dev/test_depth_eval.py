"""The depth-step evaluation on the synthetic scenes (dev/depth_eval.py): rows and table."""

from __future__ import annotations

from dev.depth_eval import evaluate, table


def test_each_object_is_scored_and_the_table_has_every_row() -> None:
    results = evaluate(3, 224, 224)
    assert len(results["visible"]) == len(results["amodal"]) >= 9
    assert all(error.centre >= 0 and len(error.size) == 3 for error, _ in results["visible"])
    text = table(results)
    assert text.count("\n") == 4 and "amodal   partly hidden" in text
