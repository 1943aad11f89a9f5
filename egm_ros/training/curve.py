"""The learning curve of ``egm-train``: every N steps the model is scored on a fixed held-out
set (scene seeds below 1,000,000, never trained on) and one JSON line is appended to
``OUT/curve.jsonl``, so progress is visible while a run trains and after it ends.

- ``tf_edge_px``: teacher-forced box-edge error (the reference trace is given, the answer's
  four coordinates are the model's argmax), in pixels of a 224-pixel-short-side image;
- ``tf_right_object``: share of those boxes that overlap the named target more than any other
  object (choosing the right object, apart from edge precision). Both mostly measure copying:
  the trace's ``Target:`` line already holds the box;
- ``tf_trace_edge_px``: the same error for every box the trace reads off the image (the
  candidates and reference objects before ``Target:``), what greedy decoding depends on;
- ``tf_attribute_acc``: accuracy of the trace's size, colour and kind words (which object is
  which);
- ``visible_acc50`` / ``amodal_acc50``: greedy decoding through the real engine and grounder
  (the embedded model's path) on a small set, Acc@0.5 as ``egm-eval`` scores it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from egm_ros.core.geometry import iou
from egm_ros.core.types import Box
from egm_ros.data.expressions import make_samples, sample_text
from egm_ros.data.scenes import generate_scene
from egm_ros.training.data import Example, encode

CURVE_SEED = 900_000  # held out (< 1e6) and apart from egm-eval's default seeds
TF_SAMPLES = 64
GREEDY_SAMPLES = 16
GREEDY_MAX_TOKENS = 400


def curve_examples(n: int = TF_SAMPLES) -> list[tuple[Example, Box, list[Box]]]:
    """(example with reasoning, target box, every object's box in the same mode)."""
    out = []
    seed = CURVE_SEED
    while len(out) < n:
        scene = generate_scene(seed)
        rng = np.random.default_rng([seed, 17])
        amodal = bool(seed % 2)
        for sample in make_samples(scene, rng, amodal=amodal, per_scene=1):
            boxes = [o.amodal if amodal else o.visible for o in scene.objects]
            example = Example(scene, sample.prompt, sample_text(sample), True)
            out.append((example, boxes[sample.target_index], boxes))
        seed += 1
    return out


def teacher_forced(model, processor, items, number_ids) -> dict[str, float]:
    """Edge errors and right-object rate under teacher forcing (see the module's list)."""
    import torch

    edges, right, trace_edges, attributes = [], [], [], []
    number_ids = number_ids.cpu()  # the scoring below runs on the CPU, only the model may not
    device = next(model.parameters()).device
    words = attribute_ids(processor.tokenizer)
    value_of = torch.zeros(int(number_ids.max()) + 1, dtype=torch.long)
    value_of[number_ids] = torch.arange(len(number_ids))  # token id -> its number
    for start in range(0, len(items), 16):
        chunk = items[start : start + 16]
        enc = encode(processor, [ex for ex, _, _ in chunk])
        enc.pop("dense")
        labels = enc.pop("labels")
        enc = {k: v.to(device) for k, v in enc.items()}
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            logits = model(**enc).logits[:, :-1].float().cpu()
        targets = labels[:, 1:]
        is_number = torch.isin(targets, number_ids)
        is_word = torch.isin(targets, words)
        predicted = logits.argmax(-1)
        for i, (ex, truth, boxes) in enumerate(chunk):
            numbers = torch.nonzero(is_number[i]).flatten()
            picks = logits[i, numbers][:, number_ids].argmax(-1)
            truths = value_of[targets[i, numbers]]
            width, height = ex.scene.size
            scale = 224.0 / min(width, height)
            box = _box(picks[-4:].tolist(), width, height)  # the answer's bbox_2d
            edges.append(_edge(box, truth) * scale)
            right.append(_chosen(box, truth, boxes))
            read = slice(0, max(0, len(numbers) - 8))  # all but the Target line and the answer
            trace_edges.extend(_value_error(picks[read], truths[read], width, height, scale))
            attributes.extend((predicted[i, is_word[i]] == targets[i, is_word[i]]).tolist())
    return {
        "tf_edge_px": round(float(np.mean(edges)), 2),
        "tf_right_object": _rate(right),
        "tf_trace_edge_px": round(float(np.mean(trace_edges)), 2) if trace_edges else 0.0,
        "tf_attribute_acc": _rate(attributes),
    }


def attribute_ids(tokenizer):
    """Token ids of the size, colour and kind words as they follow a space in a trace."""
    import torch

    from egm_ros.data.scenes import COLOURS, KINDS, SIZES

    ids = [tokenizer.encode(f" {w}", add_special_tokens=False) for w in (*SIZES, *COLOURS, *KINDS)]
    return torch.tensor([i[0] for i in ids if len(i) == 1])


def _value_error(picks, truths, width: int, height: int, scale: float) -> list[float]:
    """Pixel error of each 0..1000 coordinate (x for even places, y for odd) of whole quads."""
    out = []
    for k, (p, t) in enumerate(zip(picks.tolist(), truths.tolist(), strict=True)):
        side = width if k % 2 == 0 else height
        out.append(abs(p - t) / 1000.0 * side * scale)
    return out


def greedy(
    model, processor, n: int = GREEDY_SAMPLES, max_tokens: int = GREEDY_MAX_TOKENS
) -> dict[str, float]:
    """Acc@0.5 of greedy answers through TransformersEngine + Grounder (what ``embedded``
    runs), on ``n`` held-out amodal requests (each scores the visible and the amodal box)."""
    from egm_ros.cli.eval import evaluate, score
    from egm_ros.core.engine import SamplingParams
    from egm_ros.core.grounder import Grounder, GrounderConfig
    from egm_ros.data.eval_records import synthetic_records
    from egm_ros.engines.transformers_engine import TransformersEngine

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        engine = TransformersEngine(tmp, device="cpu")
        try:
            config = GrounderConfig(sampling=SamplingParams(max_new_tokens=max_tokens))
            records = synthetic_records(CURVE_SEED + 50_000, n, amodal=True)
            result = score(records, evaluate(Grounder(engine, config), records))
        finally:
            engine.close()
    return {
        "visible_acc50": result["visible_acc50"],
        "amodal_acc50": result["amodal_acc50"],
        "tokens_mean": result["tokens_mean"],
    }


def record(path: Path, step: int, samples: int, phase: str, metrics: dict) -> None:
    line = {"step": step, "samples": samples, "phase": phase, "time": time.time(), **metrics}
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")
    print("curve:", json.dumps(line), flush=True)


def _box(values: list[int], width: int, height: int) -> Box:
    x1, y1, x2, y2 = (v / 1000.0 for v in values)
    return Box(min(x1, x2) * width, min(y1, y2) * height, max(x1, x2) * width, max(y1, y2) * height)


def _edge(a: Box, b: Box) -> float:
    return float(np.mean([abs(a.x1 - b.x1), abs(a.y1 - b.y1), abs(a.x2 - b.x2), abs(a.y2 - b.y2)]))


def _chosen(box: Box, truth: Box, boxes: list[Box]) -> bool:
    best = max(boxes, key=lambda b: iou(box, b))
    return best == truth and iou(box, truth) > 0


def _rate(values: list[bool]) -> float:
    return round(float(np.mean(values)), 4) if values else 0.0
