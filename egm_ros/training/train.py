"""``egm-train``: supervised fine-tuning of EGM-Tiny on synthetic occlusion scenes, on the CPU.

The EGM recipe at toy scale: the model learns to reason first (which candidates there are, which
one matches and why, what hides it and where the full object extends), then answer with a box in
the ``qwen3_vl`` format. A share of the samples is trained without reasoning (Qwen3's
``enable_thinking=False`` layout: an empty think block), so the same model can also answer
directly; ``egm-eval --no-thinking`` measures that row of the trade-off.

Deterministic by seed; checkpoints every ``--save-every`` steps into ``OUT/checkpoint.pt``;
``--resume`` continues from it. The final model is saved as a standard model folder in ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from egm_ros.data.expressions import corpus_lines, samples
from egm_ros.models.tiny_qwen3_vl import (
    TinyConfig,
    build_model,
    build_processor,
    number_token_ids,
)

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
TRAIN_SEED_OFFSET = 1_000_000  # training scenes never overlap the held-out ones (seeds < 1e6)


def training_examples(
    seed: int, direct_share: float
) -> Iterator[tuple[np.ndarray, str, str, bool]]:
    """(image, prompt, target, thinking) forever, from training seeds."""
    rng = np.random.default_rng(seed)
    start = TRAIN_SEED_OFFSET + seed * 10_000_000
    for scene, sample in samples(range(start, start + 10**9), amodal=True):
        thinking = bool(rng.random() >= direct_share)
        target = sample.target_text() if thinking else sample.answer
        yield scene.image, sample.prompt, target, thinking


def encode(processor, batch: Sequence[tuple[np.ndarray, str, str, bool]]):
    """Inputs and labels; only the assistant's tokens (and its end of turn) are learned."""
    import torch
    from PIL import Image

    images = [Image.fromarray(image) for image, *_ in batch]
    prompts, texts = [], []
    for _, prompt, target, thinking in batch:
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
        ]
        head = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, enable_thinking=thinking
        )
        prompts.append(head)
        texts.append(head + target + "<|im_end|>")
    processor.tokenizer.padding_side = "right"
    enc = processor(text=texts, images=images, padding=True, return_tensors="pt")
    # The prompt's length without running the image processor twice: its text tokens (one
    # <|image_pad|>) plus the image's further placeholder tokens.
    merge = processor.image_processor.merge_size**2
    extra = (enc["image_grid_thw"].prod(dim=1) // merge - 1).tolist()
    heads = processor.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    labels = enc["input_ids"].clone()
    for i, (head, more) in enumerate(zip(heads, extra, strict=True)):
        labels[i, : len(head) + more] = -100
    labels[enc["attention_mask"] == 0] = -100
    enc["labels"] = labels
    return enc, int((labels != -100).sum()), torch


def coordinate_context_ids(tokenizer) -> list[int]:
    """Tokens after which a number token is a box coordinate (``[``, ``,``, a space): the "2"
    of ``bbox_2d`` is a number token too, but one that must come out exactly."""
    out = []
    for token, i in tokenizer.get_vocab().items():
        text = token.replace("\u0120", " ").strip()
        if text == "" or text.endswith(("[", ",")):
            out.append(i)
    return out


def weighted_loss(
    model,
    inputs,
    number_ids,
    number_weight: float,
    sigma: float = 0.0,
    coordinate_after=None,
):
    """Next-token cross-entropy over the assistant's tokens (and the coordinates' own mean, for
    the log), with box coordinates weighted ``number_weight`` times: they are 4 of about 60
    learned tokens but all of the score.

    ``sigma`` > 0 gives each coordinate a soft target, a Gaussian of that many units (of 0..1000)
    around the true value over the number tokens: an answer 3 units off then costs little and
    one 300 off a lot, where plain cross-entropy punishes both alike. That distance-aware signal
    is what lets a tiny model learn to place boxes in an hour. ``coordinate_after``: token ids
    that precede a coordinate (``coordinate_context_ids``); other number tokens keep hard
    targets."""
    import torch
    import torch.nn.functional as F

    labels = inputs["labels"]
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits[:, :-1]
    targets = labels[:, 1:]
    logp = F.log_softmax(logits.float(), dim=-1)
    safe = targets.clamp(min=0)
    ce = -logp.gather(-1, safe[..., None])[..., 0] * (targets != -100)
    is_number = torch.isin(targets, number_ids)
    number_loss = ce[is_number].mean().item() if is_number.any() else 0.0
    soft_at = is_number
    if coordinate_after is not None:
        soft_at = is_number & torch.isin(inputs["input_ids"][:, :-1], coordinate_after)
    if sigma > 0 and soft_at.any():
        value_of = torch.full((logits.shape[-1],), -1, dtype=torch.long)
        value_of[number_ids] = torch.arange(len(number_ids))
        true = value_of[targets[soft_at]].float()[:, None]
        grid = torch.arange(len(number_ids), dtype=torch.float32)[None, :]
        soft = torch.exp(-0.5 * ((grid - true) / sigma) ** 2)
        soft = soft / soft.sum(dim=1, keepdim=True)
        soft_ce = -(soft * logp[soft_at][:, number_ids]).sum(dim=1)
        ce = ce.masked_scatter(soft_at, soft_ce)
    weights = (targets != -100).float() * torch.where(is_number, number_weight, 1.0)
    return (ce * weights).sum() / weights.sum(), number_loss


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(args: argparse.Namespace) -> Path:
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    if args.resume and (out / "tokenizer.json").is_file():
        # The checkpoint's token ids belong to the tokenizer saved beside it: reuse it.
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(out, local_files_only=True)
    else:
        processor = build_processor(corpus_lines(400, seed=TRAIN_SEED_OFFSET), EGM_TINY)
        processor.save_pretrained(out)
    model = build_model(processor.tokenizer, EGM_TINY, seed=args.seed).train()
    number_ids = torch.tensor(number_token_ids(processor.tokenizer))
    coordinate_after = torch.tensor(coordinate_context_ids(processor.tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    step, seen = 0, 0
    if args.resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, seen = state["step"], state["seen"]
        print(f"resumed at step {step}", flush=True)
    if args.export:  # save the checkpoint as a model folder, no training
        args.steps = step
    data = training_examples(args.seed, args.direct_share)
    for _ in range(0 if args.export else seen):  # the same stream as an uninterrupted run
        next(data)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"EGM-Tiny: {params / 1e6:.2f}M parameters, {args.steps} steps of {args.batch}", flush=True
    )
    start, start_seen, losses, number_losses = time.monotonic(), seen, [], []
    while step < args.steps:
        batch = [next(data) for _ in range(args.batch)]
        seen += len(batch)
        inputs, _, _ = encode(processor, batch)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        loss, number_loss = weighted_loss(
            model, inputs, number_ids, args.number_weight, args.coordinate_sigma, coordinate_after
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        losses.append(loss.item())
        number_losses.append(number_loss)
        if step % args.log_every == 0 or step == args.steps:
            rate = (seen - start_seen) / max(1e-9, time.monotonic() - start)  # this run's
            eta = (args.steps - step) * args.batch / max(rate, 1e-9)
            bar = "#" * int(30 * step / args.steps)
            recent = np.mean(losses[-args.log_every :])
            recent_numbers = np.mean(number_losses[-args.log_every :])
            print(
                f"[{bar:<30}] step {step}/{args.steps} loss {recent:.3f}"
                f" (coordinates {recent_numbers:.2f})"
                f" lr {optimizer.param_groups[0]['lr']:.2e} {rate:.1f} samples/s "
                f"eta {eta / 60:.1f} min",
                flush=True,
            )
        if step % args.save_every == 0 or step == args.steps:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "seen": seen,
                },
                ckpt_path,
            )
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "egm_tiny.json").write_text(
        json.dumps(
            {
                "steps": step,
                "batch": args.batch,
                "seed": args.seed,
                "lr": args.lr,
                "direct_share": args.direct_share,
                "number_weight": args.number_weight,
                "parameters": params,
                "final_loss": float(np.mean(losses[-50:])) if losses else None,
            },
            indent=2,
        )
    )
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="egm-train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/egm_tiny", help="output model folder")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--direct-share", type=float, default=0.3, help="share of samples trained without reasoning"
    )
    parser.add_argument(
        "--number-weight", type=float, default=3.0, help="loss weight of box coordinate tokens"
    )
    parser.add_argument(
        "--coordinate-sigma",
        type=float,
        default=8.0,
        help="width (0..1000 units) of the soft target of box coordinates; 0: plain CE",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--export",
        action="store_true",
        help="with --resume: save the checkpoint as a model folder and stop",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = train(args)
    print(f"saved EGM-Tiny to {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
