"""`egm-train` in miniature: a few steps, a checkpoint, resume, and a loadable model folder."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.ml


def test_train_phases_checkpoint_resume_curve_and_save(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from egm_ros.training.train import main

    out = tmp_path / "egm_tiny"
    common = ["--out", str(out), "--batch", "2", "--vision-batch", "2", "--vision-steps", "2"]
    common += ["--log-every", "1", "--save-every", "1", "--warmup", "1", "--workers", "0"]
    common += ["--eval-every", "2", "--greedy-every", "0"]
    # A run stopped right after its vision warm-up resumes into the whole-model phase.
    assert main([*common, "--steps", "0"]) == 0
    assert json.loads((out / "egm_tiny.json").read_text())["seen"] == 2 * 2
    assert main([*common, "--steps", "2", "--resume"]) == 0
    first = json.loads((out / "egm_tiny.json").read_text())
    assert first["phase"] == "full" and first["steps"] == 2
    assert first["seen"] == 2 * 2 + 2 * 2  # vision warm-up, then the whole model
    curve = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert curve[-1]["step"] == 2 and curve[-1]["tf_edge_px"] >= 0
    assert 0 <= curve[-1]["tf_right_object"] <= 1
    assert curve[-1]["tf_trace_edge_px"] > 0  # an untrained model cannot read boxes off
    assert 0 <= curve[-1]["tf_attribute_acc"] < 1
    assert main([*common, "--steps", "3", "--resume"]) == 0
    assert json.loads((out / "egm_tiny.json").read_text())["steps"] == 3
    processor = AutoProcessor.from_pretrained(out, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(out, local_files_only=True)
    assert processor.tokenizer.convert_tokens_to_ids("</think>") is not None
    assert 3_000_000 < sum(p.numel() for p in model.parameters()) < 6_000_000
    # The dense head is not part of the saved model: a standard Qwen3-VL folder.
    assert model.config.model_type == "qwen3_vl"
    # A warm restart starts the whole-model phase from the checkpoint's weights, at step 0.
    warm = tmp_path / "warm"
    init = ["--out", str(warm), "--init", str(out / "checkpoint.pt")]
    assert main([*common[2:], *init, "--steps", "2"]) == 0
    restarted = json.loads((warm / "egm_tiny.json").read_text())
    assert restarted["phase"] == "full" and restarted["steps"] == 2
    assert restarted["seen"] == first["seen"] + 2 + 2 * 2  # counts the samples before it too
    assert main([*init, "--steps", "0"]) == 0
    again = AutoModelForImageTextToText.from_pretrained(warm, local_files_only=True)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_greedy_curve_point_runs_the_real_engine() -> None:
    pytest.importorskip("torch")
    from egm_ros.models.tiny_qwen3_vl import build_model, build_processor
    from egm_ros.training.curve import greedy

    processor = build_processor()
    result = greedy(build_model(processor.tokenizer), processor, n=1, max_tokens=4)
    assert result["visible_acc50"] in (0.0, 1.0) and result["amodal_acc50"] in (0.0, 1.0)
    assert result["tokens_mean"] <= 8  # two queries of at most 4 tokens


def test_a_warm_restart_from_the_shipped_model_folder(tmp_path) -> None:
    """``--init`` with a model folder (no checkpoint: the dense head starts anew and is fitted
    on the frozen model first): with ``--steps 0`` the export holds exactly the folder's
    weights, its tokenizer and the samples it had seen, although the head trained."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForImageTextToText

    from egm_ros.models.embedded import embedded_model_dir
    from egm_ros.training.train import main

    shipped = embedded_model_dir()
    out = tmp_path / "from_shipped"
    args = ["--out", str(out), "--init", str(shipped), "--steps", "0", "--workers", "0"]
    args += ["--head-steps", "2", "--vision-batch", "2", "--warmup", "1", "--save-every", "1"]
    assert main([*args, "--eval-every", "0", "--greedy-every", "0"]) == 0
    card = json.loads((out / "egm_tiny.json").read_text())
    assert card["phase"] == "full" and card["steps"] == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["phase"] == "head" and state["step"] == 2  # the head's last save
    optimized = state["optimizer"]["param_groups"][0]["params"]
    assert len(optimized) == len(state["head"])  # the head's tensors alone, not the model's
    assert card["seen"] == json.loads((shipped / "egm_tiny.json").read_text())["samples_seen"]
    assert (out / "tokenizer.json").read_bytes() == (shipped / "tokenizer.json").read_bytes()
    a = AutoModelForImageTextToText.from_pretrained(shipped, local_files_only=True).state_dict()
    b = AutoModelForImageTextToText.from_pretrained(out, local_files_only=True).state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
