"""The training loss: the model's own loss at weight one, coordinates weighted up, and soft
targets that score a near miss above a far one, on box coordinates only."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ml


def _example(target: str, thinking: bool, prompt: str = "find <ref>a</ref>"):
    from egm_ros.data.scenes import generate_scene
    from egm_ros.training.data import Example

    return Example(generate_scene(1), prompt, target, thinking)


def test_weighted_loss_is_the_models_loss_at_weight_one_and_leans_on_coordinates() -> None:
    pytest.importorskip("torch")
    import torch

    from egm_ros.models.tiny_qwen3_vl import build_model, build_processor, number_token_ids
    from egm_ros.training.data import encode
    from egm_ros.training.losses import weighted_loss

    processor = build_processor()
    model = build_model(processor.tokenizer, seed=0)
    inputs = encode(processor, [_example('</think>\n[{"bbox_2d": [10, 20, 300, 400]}]', False)])
    inputs.pop("dense")
    ids = torch.tensor(number_token_ids(processor.tokenizer))
    with torch.no_grad():
        plain, numbers = weighted_loss(model, inputs, ids, 1.0)
        heavy, _ = weighted_loss(model, inputs, ids, 5.0)
        reference = model(**inputs).loss
    assert torch.allclose(plain, reference, atol=1e-5)
    # Weight 5: the coordinates' summed loss counts five times, in numerator and denominator.
    targets = inputs["labels"][:, 1:]
    n_all = int((targets != -100).sum())
    n_num = int(torch.isin(targets, ids).sum())
    assert n_num >= 4
    s_num = numbers * n_num
    s_rest = plain.item() * n_all - s_num
    expected = (s_rest + 5 * s_num) / (n_all - n_num + 5 * n_num)
    assert heavy.item() == pytest.approx(expected, rel=1e-4)


def test_soft_coordinate_targets_score_near_misses_above_far_misses() -> None:
    """With ``sigma`` > 0 a coordinate 2 units off costs less than one 300 units off (plain
    cross-entropy scores both the same), and at sigma 0 the loss is plain cross-entropy."""
    pytest.importorskip("torch")
    from types import SimpleNamespace

    import torch

    from egm_ros.training.losses import weighted_loss

    vocab, numbers = 1100, torch.arange(50, 1051)  # ids 50..1050 stand for the values 0..1000
    true_value = 400

    def loss_for(predicted_value: int, sigma: float) -> float:
        logits = torch.full((1, 2, vocab), -20.0)
        logits[0, 0, numbers[predicted_value]] = 20.0  # confident in one value
        inputs = {
            "input_ids": torch.zeros((1, 2), dtype=torch.long),
            "labels": torch.tensor([[-100, int(numbers[true_value])]]),
        }
        model = lambda **_: SimpleNamespace(logits=logits)  # noqa: E731
        loss, _ = weighted_loss(model, inputs, numbers, 3.0, sigma)
        return loss.item()

    assert loss_for(true_value + 2, 8.0) < loss_for(true_value + 300, 8.0)
    assert loss_for(true_value + 2, 0.0) == pytest.approx(loss_for(true_value + 300, 0.0))
    assert loss_for(true_value, 0.0) < 1e-6


def test_only_box_coordinates_get_soft_targets() -> None:
    """The "2" of ``bbox_2d`` is a number token too; it must stay a hard target, or the model
    learns to write ``bbox_3``."""
    pytest.importorskip("torch")
    import torch

    from egm_ros.models.tiny_qwen3_vl import build_processor, number_token_ids
    from egm_ros.training.data import encode
    from egm_ros.training.losses import coordinate_context_ids

    processor = build_processor()
    tok = processor.tokenizer
    target = 'Visible part: [1, 2, 3, 4].</think>\n[{"bbox_2d": [10, 20, 300, 400]}]'
    inputs = encode(processor, [_example(target, True, "p")])
    targets = inputs["labels"][0, 1:]
    numbers = torch.isin(targets, torch.tensor(number_token_ids(tok)))
    soft = numbers & torch.isin(
        inputs["input_ids"][0, :-1], torch.tensor(coordinate_context_ids(tok))
    )
    assert tok.convert_ids_to_tokens(targets[soft].tolist()) == [
        *"1234",
        "10",
        "20",
        "300",
        "400",
    ]
    assert tok.convert_ids_to_tokens(targets[numbers & ~soft].tolist()) == ["2"]
