"""Training batches for ``egm-train``: synthetic scenes at several camera aspects, a referring
expression for each as a chat sequence with labels, and the dense targets of its visual tokens.

Batch ``k`` is a pure function of (seed, phase, k): it uses scenes ``base + k * batch ...``, so
``--resume`` continues exactly where a run stopped without replaying the stream, and a worker
process can make batches ahead of the training loop (one data worker and one compute thread
was the fastest split of two cores, measured). Training scenes have seeds of 1,000,000 and above;
held-out evaluation uses seeds below.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from egm_ros.data.expressions import make_samples, sample_text
from egm_ros.data.scenes import Scene, generate_scene
from egm_ros.training.dense import dense_targets, merged_grid, stack_targets

TRAIN_SEED_OFFSET = 1_000_000  # training scenes never overlap the held-out ones (seeds < 1e6)
#: (width, height) of training scenes: half square, half other camera aspects, so the model
#: also grounds in 4:3 and 16:9 frames (objects scale with the shorter side, as in a camera).
ASPECTS = ((298, 224), (398, 224), (224, 298), (320, 240), (256, 256))
SQUARE_SHARE = 0.5
_PHASE_BASE = {"vision": 500_000_000, "full": 0}


@dataclass
class Example:
    scene: Scene
    prompt: str
    target: str  # the assistant's text after the chat template's "<think>\n"
    thinking: bool


def scene_for(seed: int) -> Scene:
    """The training scene of ``seed``, at the aspect that seed draws."""
    rng = np.random.default_rng([seed, 2711])
    if rng.random() < SQUARE_SHARE:
        return generate_scene(seed)
    width, height = ASPECTS[int(rng.integers(len(ASPECTS)))]
    return generate_scene(seed, width=width, height=height)


def example_for(seed: int, direct_share: float) -> Example | None:
    """One sample of the scene of ``seed`` (visible or amodal, with or without reasoning)."""
    scene = scene_for(seed)
    rng = np.random.default_rng([seed, 7919])
    made = make_samples(scene, rng, amodal=bool(rng.random() < 0.5), per_scene=1)
    if not made:
        return None
    thinking = bool(rng.random() >= direct_share)
    return Example(scene, made[0].prompt, sample_text(made[0], direct=not thinking), thinking)


def batch_seeds(seed: int, phase: str, index: int, batch: int) -> range:
    start = TRAIN_SEED_OFFSET + _PHASE_BASE[phase] + seed * 50_000_000 + index * batch * 2
    return range(start, start + batch * 2)  # twice as many: a few scenes give no sample


def examples(seed: int, index: int, batch: int, direct_share: float) -> list[Example]:
    out: list[Example] = []
    for s in batch_seeds(seed, "full", index, batch):
        example = example_for(s, direct_share)
        if example is not None:
            out.append(example)
        if len(out) == batch:
            break
    return out


def encode(processor, batch: Sequence[Example]) -> dict:
    """Model inputs with ``labels`` (only the assistant's tokens and its end of turn are
    learned) and ``dense`` targets for the visual tokens."""
    from PIL import Image

    images = [Image.fromarray(ex.scene.image) for ex in batch]
    heads, texts = [], []
    for ex in batch:
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ex.prompt}]}
        ]
        head = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, enable_thinking=ex.thinking
        )
        heads.append(head)
        texts.append(head + ex.target + "<|im_end|>")
    processor.tokenizer.padding_side = "right"
    enc = dict(processor(text=texts, images=images, padding=True, return_tensors="pt"))
    merge = processor.image_processor.merge_size
    grids = enc["image_grid_thw"].tolist()
    # The prompt's length without running the image processor twice: its text tokens (one
    # <|image_pad|>) plus the image's further placeholder tokens.
    extra = [t * h * w // merge**2 - 1 for t, h, w in grids]
    head_ids = processor.tokenizer(heads, add_special_tokens=False)["input_ids"]
    labels = enc["input_ids"].clone()
    for i, (ids, more) in enumerate(zip(head_ids, extra, strict=True)):
        labels[i, : len(ids) + more] = -100
    labels[enc["attention_mask"] == 0] = -100
    enc["labels"] = labels
    enc["dense"] = _dense(batch, grids, merge)
    return enc


def encode_images(processor, scenes: Sequence[Scene]) -> dict:
    """Vision warm-up inputs: pixels, grids and dense targets, no text."""
    from PIL import Image

    out = processor.image_processor(
        images=[Image.fromarray(s.image) for s in scenes], return_tensors="pt"
    )
    grids = out["image_grid_thw"].tolist()
    return {
        "pixel_values": out["pixel_values"],
        "image_grid_thw": out["image_grid_thw"],
        "dense": stack_targets(
            [
                dense_targets(s, *merged_grid(g, processor.image_processor.merge_size))
                for s, g in zip(scenes, grids, strict=True)
            ]
        ),
    }


def _dense(batch: Sequence[Example], grids: list[list[int]], merge: int) -> dict:
    return stack_targets(
        [
            dense_targets(ex.scene, *merged_grid(g, merge))
            for ex, g in zip(batch, grids, strict=True)
        ]
    )


class BatchStream:
    """Batches ``first, first + 1, ...`` of one phase; iterable in a DataLoader worker.
    ``share(k, n)``: a copy that makes only every ``n``-th batch from ``first + k``, so ``n``
    workers make the same stream between them."""

    def __init__(
        self, processor, phase: str, seed: int, first: int, batch: int, direct_share: float
    ):
        self.processor, self.phase, self.seed = processor, phase, seed
        self.first, self.batch, self.direct_share = first, batch, direct_share
        self.offset, self.stride = 0, 1

    def share(self, k: int, n: int) -> BatchStream:
        part = copy.copy(self)
        part.offset, part.stride = k, n
        return part

    def __iter__(self) -> Iterator[dict]:
        index = self.first + self.offset
        while True:
            if self.phase == "vision":
                seeds = batch_seeds(self.seed, "vision", index, self.batch)[: self.batch]
                yield encode_images(self.processor, [scene_for(s) for s in seeds])
            else:
                yield encode(
                    self.processor, examples(self.seed, index, self.batch, self.direct_share)
                )
            index += self.stride


def loader(stream: BatchStream, workers: int, pin_memory: bool = False):
    """Batches made ahead in ``workers`` processes (0: in this process), in stream order:
    the DataLoader takes from its workers in turn, and worker ``k`` makes batches
    ``first + k, first + k + workers, ...``."""
    if workers <= 0:
        return iter(stream)
    import torch

    class _Iterable(torch.utils.data.IterableDataset):
        def __iter__(self):
            torch.set_num_threads(1)
            info = torch.utils.data.get_worker_info()
            return iter(stream.share(info.id, info.num_workers))

    return iter(
        torch.utils.data.DataLoader(
            _Iterable(),
            batch_size=None,
            num_workers=workers,
            prefetch_factor=4,
            pin_memory=pin_memory,
        )
    )
