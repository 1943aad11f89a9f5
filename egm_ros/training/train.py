"""``egm-train``: supervised fine-tuning of EGM-Tiny on synthetic occlusion scenes, on the CPU
(or a CUDA GPU with ``--device cuda``, the scenes then made by ``--workers`` processes).

The EGM recipe at toy scale: the model learns to reason first (which candidates there are, which
one matches and why, what hides it and where the full object extends), then answer with a box in
the ``qwen3_vl`` format. A share of the samples is trained without reasoning (Qwen3's
``enable_thinking=False`` layout: an empty think block), so the same model can also answer
directly; ``egm-eval --no-thinking`` measures that row of the trade-off.

Deterministic by seed; checkpoints every ``--save-every`` steps into ``OUT/checkpoint.pt``;
``--resume`` continues from it; ``--init`` starts a new run (a warm restart: new schedule, new
optimizer, a new scene stream by ``--seed``) from another run's checkpoint, or from a model
folder, whose new dense head is first fitted on the frozen model (``--head-steps``). The final
model is saved as a standard model folder in ``OUT``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egm_ros.data.expressions import corpus_lines
from egm_ros.models.fast_forwards import use_linear_patch_embedding
from egm_ros.models.tiny_qwen3_vl import (
    TinyConfig,
    build_model,
    build_processor,
    number_token_ids,
)
from egm_ros.training.curve import curve_examples, greedy, record, teacher_forced
from egm_ros.training.data import TRAIN_SEED_OFFSET, BatchStream, loader
from egm_ros.training.dense import build_head, dense_loss, freeze_sincos_positions
from egm_ros.training.losses import coordinate_context_ids, weighted_loss

#: EGM-Tiny: text 4 x 256, vision 2 x 128, 224 x 224 input.
EGM_TINY = TinyConfig(
    text_layers=4,
    hidden=256,
    heads=4,
    kv_heads=2,
    intermediate=512,
    vision_depth=2,
    vision_hidden=128,
    vision_heads=2,
    image_size=224,
    vocab_size=640,
)


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class _Run:
    """A training run's model, processor, dense head and progress; saved to and resumed from
    ``OUT/checkpoint.pt``."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args, self.torch = args, torch
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt = self.out / "checkpoint.pt"
        torch.manual_seed(args.seed)
        torch.set_num_threads(args.threads)
        self.device = torch.device(args.device)
        init = Path(args.init) if args.init and not args.resume else None
        self.processor = self._processor(init)
        self.model = build_model(self.processor.tokenizer, EGM_TINY, seed=args.seed).train()
        freeze_sincos_positions(self.model)
        self.head = build_head(EGM_TINY.hidden)
        self.phase, self.step, self.seen, self.optimizer_state = "vision", 0, 0, None
        if args.resume and self.ckpt.is_file():
            state = self._load(self.ckpt)
            self.phase, self.step = state["phase"], state["step"]
            # The optimizer state belongs to the phase it was saved in.
            self.optimizer_state = state.get("optimizer") if state["phase"] == self.phase else None
            print(f"resumed in phase {self.phase} at step {self.step}", flush=True)
        elif init is not None and init.is_dir():
            self._load_folder(init)
            self.phase = "head"  # the new dense head is fitted first, on the frozen model
        elif init is not None:
            self._load(init)
            self.phase = "full"
            print(f"warm restart from {init} ({self.seen} samples seen)", flush=True)
        use_linear_patch_embedding(self.model)  # the Conv3d's backward was 40 % of a CPU step
        self.model.to(self.device)
        self.head.to(self.device)
        self.number_ids = torch.tensor(number_token_ids(self.processor.tokenizer)).to(self.device)
        self.coordinate_after = torch.tensor(coordinate_context_ids(self.processor.tokenizer)).to(
            self.device
        )
        if self.phase == "vision" and self.step >= args.vision_steps:
            self.phase, self.step, self.optimizer_state = "full", 0, None
        if self.phase == "head" and self.step >= args.head_steps:
            self.phase, self.step, self.optimizer_state = "full", 0, None

    def _processor(self, init: Path | None):
        """The checkpoint's token ids belong to the tokenizer saved beside it: reuse it."""
        if self.args.resume:
            folder: Path | None = self.out
        elif init is not None:
            folder = init if init.is_dir() else init.parent  # a model folder, or a checkpoint's
        else:
            folder = None
        if folder is not None and (folder / "tokenizer.json").is_file():
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        else:
            processor = build_processor(corpus_lines(400, seed=TRAIN_SEED_OFFSET), EGM_TINY)
        processor.save_pretrained(self.out)
        return processor

    def _load(self, path: Path) -> dict:
        """Weights of the model and the dense head, and the samples they have seen."""
        state = self.torch.load(path, weights_only=True, map_location="cpu")
        self.model.load_state_dict(state["model"])
        self.head.load_state_dict(state["head"])
        self.seen = state["seen"]
        return state

    def _load_folder(self, folder: Path) -> None:
        """A model folder (the shipped ``egm_ros/models/egm_tiny``): its weights; the dense head,
        which no folder holds, starts anew; the samples seen from its ``egm_tiny.json``."""
        from transformers import AutoModelForImageTextToText

        saved = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True)
        self.model.load_state_dict(saved.state_dict())
        card = folder / "egm_tiny.json"
        info = json.loads(card.read_text()) if card.is_file() else {}
        self.seen = int(info.get("samples_seen") or info.get("seen") or 0)

    def optimizer(self, lr: float):
        if self.phase == "head":
            params = []  # the new dense head alone
        else:
            module = self.model.model.visual if self.phase == "vision" else self.model
            params = [p for p in module.parameters() if p.requires_grad]
        optimizer = self.torch.optim.AdamW(
            [*params, *self.head.parameters()], lr=lr, weight_decay=0.01
        )
        if self.optimizer_state is not None:
            optimizer.load_state_dict(self.optimizer_state)
            self.optimizer_state = None
        return optimizer

    def save(self, optimizer) -> None:
        self.torch.save(
            {
                "model": self.model.state_dict(),
                "head": self.head.state_dict(),
                "optimizer": optimizer.state_dict(),
                "phase": self.phase,
                "step": self.step,
                "seen": self.seen,
            },
            self.ckpt,
        )


def _dense_phase(run: _Run) -> None:
    """Dense targets alone (no text). The vision warm-up trains the tower and the head: cheap,
    and the language model then starts from tokens that say what is where. After a warm
    restart from a model folder (phase ``head``) only the new head learns, on the frozen tower,
    so its first, random gradients never reach the trained model (two CPU restarts without
    this did not beat the model they started from)."""
    args, torch = run.args, run.torch
    head_only = run.phase == "head"
    total = args.head_steps if head_only else args.vision_steps
    optimizer = run.optimizer(args.vision_lr)
    stream = BatchStream(run.processor, "vision", args.seed, run.step, args.vision_batch, 0.0)
    batches, log = _batches(run, stream), _Log(args, total, args.vision_batch)
    while run.step < total:
        batch = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(run.step, total, args.vision_lr, args.warmup)
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=args.bf16):
            with torch.no_grad() if head_only else contextlib.nullcontext():
                tokens = run.model.model.visual(
                    batch["pixel_values"], grid_thw=batch["image_grid_thw"]
                ).pooler_output
            loss, metrics = dense_loss(run.head, tokens, batch["dense"])
        _update(run, optimizer, loss)
        run.seen += 0 if head_only else args.vision_batch  # the model itself learned nothing
        log.add(run.step, loss.item(), metrics, optimizer)
        if run.step % args.save_every == 0 or run.step == total:
            run.save(optimizer)
    run.phase, run.step = "full", 0


def _full_phase(run: _Run) -> None:
    """The whole model on reasoning traces and answers, the dense loss kept as an auxiliary."""
    args, torch = run.args, run.torch
    optimizer = run.optimizer(args.lr)
    captured: dict = {}
    hook = run.model.model.visual.register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("tokens", out.pooler_output)
    )
    stream = BatchStream(run.processor, "full", args.seed, run.step, args.batch, args.direct_share)
    batches, log = _batches(run, stream), _Log(args, args.steps, args.batch)
    curve = run.out / "curve.jsonl"
    try:
        while run.step < args.steps:
            inputs = next(batches)
            dense = inputs.pop("dense")
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(run.step, args.steps, args.lr, args.warmup)
            with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=args.bf16):
                lm, coordinates = weighted_loss(
                    run.model,
                    inputs,
                    run.number_ids,
                    args.number_weight,
                    args.coordinate_sigma,
                    run.coordinate_after,
                )
                aux, metrics = dense_loss(run.head, captured.pop("tokens"), dense)
            _update(run, optimizer, lm + args.aux_weight * aux)
            run.seen += args.batch
            log.add(run.step, lm.item(), {"coordinates": coordinates, **metrics}, optimizer)
            if run.step % args.save_every == 0 or run.step == args.steps:
                run.save(optimizer)
            if args.eval_every and (run.step % args.eval_every == 0 or run.step == args.steps):
                _score(run, curve)
    finally:
        hook.remove()


def _batches(run: _Run, stream):
    """The stream's batches, each on the training device (``dense`` is a dict of tensors)."""
    cuda = run.device.type == "cuda"

    def move(value):
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value.to(run.device, non_blocking=cuda)

    return (move(batch) for batch in loader(stream, run.args.workers, pin_memory=cuda))


def _update(run: _Run, optimizer, loss) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    run.torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    run.step += 1


def _score(run: _Run, curve: Path) -> None:
    run.model.eval()
    try:
        metrics = teacher_forced(run.model, run.processor, run.curve_items, run.number_ids)
        if run.args.greedy_every and run.step % run.args.greedy_every == 0:
            metrics.update(greedy(run.model, run.processor))
        record(curve, run.step, run.seen, run.phase, metrics)
    finally:
        run.model.train()


class _Log:
    """Progress lines: loss, the dense head's kind accuracy and edge error, rate, ETA."""

    def __init__(self, args: argparse.Namespace, total: int, batch: int) -> None:
        self.every, self.total, self.batch = args.log_every, total, batch
        self.start, self.first, self.rows = time.monotonic(), None, []

    def add(self, step: int, loss: float, metrics: dict, optimizer) -> None:
        self.first = step if self.first is None else self.first
        self.rows.append((loss, metrics))
        if step % self.every and step != self.total:
            return
        rate = (step - self.first + 1) * self.batch / max(1e-9, time.monotonic() - self.start)
        eta = (self.total - step) * self.batch / max(rate, 1e-9)
        recent = self.rows[-self.every :]
        means = {k: np.nanmean([m[k] for _, m in recent]) for k in recent[-1][1]}
        extra = " ".join(f"{k} {v:.3f}" for k, v in means.items())
        print(
            f"step {step}/{self.total} loss {np.mean([r[0] for r in recent]):.3f} {extra}"
            f" lr {optimizer.param_groups[0]['lr']:.2e} {rate:.1f} samples/s"
            f" eta {eta / 60:.1f} min",
            flush=True,
        )


def train(args: argparse.Namespace) -> Path:
    """Vision warm-up (``--vision-steps``), then the full model (``--steps``); resumable in
    either phase. The final model is saved as a standard model folder in ``OUT``."""
    run = _Run(args)
    params = sum(p.numel() for p in run.model.parameters())
    print(f"EGM-Tiny: {params / 1e6:.2f}M parameters; phase {run.phase}", flush=True)
    run.curve_items = curve_examples()
    if not args.export:
        if run.phase in ("vision", "head"):
            _dense_phase(run)
        _full_phase(run)
    run.model.eval()
    run.model.save_pretrained(run.out)
    run.processor.save_pretrained(run.out)
    (run.out / "egm_tiny.json").write_text(
        json.dumps(
            {
                "steps": run.step,
                "phase": run.phase,
                "seen": run.seen,
                "parameters": params,
                "args": {k: v for k, v in vars(args).items() if k not in ("resume", "export")},
            },
            indent=2,
        )
    )
    return run.out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="egm-train",
        description="Train EGM-Tiny on synthetic occlusion scenes on the CPU: a vision warm-up "
        "on dense per-token targets, then the whole model on reasoning traces and answers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--out", default="build/egm_tiny", help="output model folder (checkpoint, curve too)")
    add("--vision-steps", type=int, default=1500, help="vision warm-up steps (0: none)")
    add("--vision-batch", type=int, default=32, help="scenes per vision warm-up step")
    add("--vision-lr", type=float, default=1.5e-3, help="peak learning rate of the warm-up")
    add(
        "--head-steps",
        type=int,
        default=300,
        help="after --init from a model folder: steps that fit the new dense head on the frozen "
        "model (--vision-batch scenes, --vision-lr) before the whole model trains (0: none)",
    )
    add("--steps", type=int, default=2000, help="steps of the whole model")
    add("--batch", type=int, default=16, help="samples per step of the whole model")
    add("--lr", type=float, default=2e-3, help="peak learning rate of the whole model")
    add("--warmup", type=int, default=100, help="linear warm-up steps of each phase")
    add("--seed", type=int, default=0, help="model initialisation and training-scene stream")
    add("--direct-share", type=float, default=0.3, help="share of samples without reasoning")
    add("--number-weight", type=float, default=3.0, help="loss weight of box coordinate tokens")
    add(
        "--coordinate-sigma",
        type=float,
        default=8.0,
        help="width (0..1000 units) of the soft target of box coordinates; 0: plain CE",
    )
    add("--aux-weight", type=float, default=1.0, help="weight of the dense visual-token loss")
    add("--bf16", action=argparse.BooleanOptionalAction, default=True, help="bf16 autocast")
    add("--threads", type=int, default=1, help="torch compute threads")
    add("--workers", type=int, default=1, help="data worker processes (0: none)")
    add("--device", choices=("cpu", "cuda"), default="cpu", help="where the model trains")
    add(
        "--init",
        help="warm restart: start the whole-model phase from this checkpoint.pt's model and "
        "dense head, or from a model folder's weights with a new dense head (e.g. the shipped "
        "egm_ros/models/egm_tiny; see --head-steps); new optimizer and schedule; --seed picks "
        "a new scene stream",
    )
    add("--log-every", type=int, default=20, help="steps between progress lines")
    add("--save-every", type=int, default=200, help="steps between checkpoints")
    add("--eval-every", type=int, default=250, help="steps between learning-curve points (0: off)")
    add("--greedy-every", type=int, default=1000, help="steps between greedy curve points")
    add("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    add("--export", action="store_true", help="with --resume: save the model folder and stop")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = train(args)
    print(f"saved EGM-Tiny to {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
