"""Training batches: a pure function of (seed, phase, index), several camera aspects, labels on
the assistant's text only, dense targets per visual token."""

from __future__ import annotations

import numpy as np
import pytest

from egm_ros.training.data import Example, batch_seeds, examples, scene_for


def test_batches_are_reproducible_by_index() -> None:
    a = examples(0, 5, 4, 0.3)
    b = examples(0, 5, 4, 0.3)
    c = examples(0, 6, 4, 0.3)
    assert [e.target for e in a] == [e.target for e in b]
    assert [e.target for e in a] != [e.target for e in c]
    assert min(batch_seeds(0, "full", 0, 4)) >= 1_000_000  # never a held-out scene
    assert set(batch_seeds(0, "vision", 0, 4)).isdisjoint(batch_seeds(0, "full", 0, 4))


def test_training_scenes_come_in_several_aspects() -> None:
    sizes = {scene_for(1_000_000 + s).size for s in range(40)}
    assert (224, 224) in sizes and any(w != h for w, h in sizes)


def test_labels_cover_only_the_assistant_answer_and_dense_targets_match_tokens() -> None:
    pytest.importorskip("torch")
    from egm_ros.data.scenes import generate_scene
    from egm_ros.models.tiny_qwen3_vl import build_processor
    from egm_ros.training.data import encode

    processor = build_processor()
    batch = [
        Example(generate_scene(1), "find <ref>a</ref>", "because</think>\nANSWER", True),
        Example(generate_scene(2, width=298, height=224), "find <ref>b</ref>", "ANSWER", False),
    ]
    inputs = encode(processor, batch)
    tok = processor.tokenizer
    for row, labels in zip(inputs["input_ids"], inputs["labels"], strict=True):
        learned = tok.decode(
            [t for t, lab in zip(row.tolist(), labels.tolist(), strict=True) if lab != -100]
        )
        assert learned.endswith("ANSWER<|im_end|>") and "find" not in learned
    image_tokens = int((inputs["input_ids"] == tok.convert_tokens_to_ids("<|image_pad|>")).sum())
    assert inputs["dense"]["kind"].shape == (image_tokens,)
    assert np.isfinite(inputs["dense"]["boxes"].numpy()).all()


def test_several_workers_make_the_same_stream_in_order() -> None:
    """Worker k makes batches first + k, first + k + n, ...; the loader takes them in turn, so
    a run on many cores (``--workers 14`` beside a GPU) trains on the batches one core makes."""
    pytest.importorskip("torch")
    import itertools

    from egm_ros.models.tiny_qwen3_vl import build_processor
    from egm_ros.training.data import BatchStream, loader

    processor = build_processor()

    def ids(workers: int) -> list[list[int]]:
        stream = BatchStream(processor, "full", 0, 7, 2, 0.3)
        batches = itertools.islice(loader(stream, workers), 5)
        return [b["input_ids"][0].tolist() for b in batches]

    one = ids(0)
    assert len({tuple(row) for row in one}) == 5  # five different batches
    assert ids(2) == one
