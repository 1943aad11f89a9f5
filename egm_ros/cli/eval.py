"""``egm-eval``: score any engine on a grounding dataset through the project's grounder.

Inputs: ``--synthetic --seed S --n N`` (held-out synthetic scenes) or ``--data FILE.jsonl`` in the
EGM authors' format (their RefCOCO files work as they are; amodal sets are recognised by
``modal_bbox``). Prints mean IoU, Acc@0.5 (IoU > 0.5, as the authors count) for visible and
amodal boxes, latency p50/p95 and generated tokens; ``--json`` prints one object. A failed request
scores IoU 0. The default engine is the embedded EGM-Tiny.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from egm_ros.core.families import Family
from egm_ros.core.geometry import iou
from egm_ros.core.grounder import DEFAULT_MAX_PIXELS, Grounder, GrounderConfig
from egm_ros.core.images import load_image_file
from egm_ros.core.prompts import PromptStyle
from egm_ros.core.types import GroundingError, GroundingOutcome, Mode, Status
from egm_ros.data.eval_records import EvalRecord, read_records, synthetic_records
from egm_ros.engines import BACKENDS, EngineSettings, create_engine
from egm_ros.engines.base import SamplingParams


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="egm-eval", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", action="store_true", help="held-out synthetic scenes")
    src.add_argument("--data", help="JSONL file in the EGM authors' evaluation format")
    p.add_argument("--seed", type=int, default=0, help="first synthetic seed (held out < 1e6)")
    p.add_argument("--n", type=int, default=200, help="number of samples (synthetic or first N)")
    p.add_argument("--amodal", action="store_true", help="synthetic: also score amodal boxes")
    p.add_argument("--backend", choices=BACKENDS, default="embedded")
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--model", default="")
    p.add_argument("--family", choices=[f.value for f in Family], default=None)
    p.add_argument("--prompt-style", choices=[s.value for s in PromptStyle], default="egm")
    p.add_argument(
        "--no-thinking",
        action="store_true",
        help="ask the model to answer without reasoning (enable_thinking=False)",
    )
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def score(records: list[EvalRecord], outcomes: list[GroundingOutcome]) -> dict:
    """The metrics; keys are a user-facing contract."""
    vis, amo, lat, tokens = [], [], [], []
    for rec, out in zip(records, outcomes, strict=True):
        obj = out.objects[0] if out.objects and out.status is Status.OK else None
        vis.append(iou(obj.visible, rec.visible) if obj and obj.visible and rec.visible else 0.0)
        if rec.amodal is not None:
            amo.append(iou(obj.amodal, rec.amodal) if obj and obj.amodal else 0.0)
        lat.append(out.latency.total_ms)
        tokens.append(out.tokens)

    def acc(values: list[float]) -> float | None:
        return round(float(np.mean([v > 0.5 for v in values])), 4) if values else None

    def mean(values: list[float]) -> float | None:
        return round(float(np.mean(values)), 4) if values else None

    return {
        "n": len(records),
        "visible_acc50": acc(vis),
        "amodal_acc50": acc(amo),
        "mean_iou": mean(vis),
        "amodal_mean_iou": mean(amo),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if lat else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if lat else None,
        "tokens_mean": round(float(np.mean(tokens)), 1) if tokens else None,
        "statuses": dict(Counter(o.status.value for o in outcomes)),
    }


def evaluate(
    grounder: Grounder, records: list[EvalRecord], concurrency: int = 1, progress: bool = True
) -> list[GroundingOutcome]:
    def one(rec: EvalRecord) -> GroundingOutcome:
        mode = Mode.AMODAL if rec.amodal is not None else Mode.VISIBLE
        try:
            rgb = rec.rgb if rec.rgb is not None else load_image_file(rec.image)
        except GroundingError as err:
            return GroundingOutcome(status=err.status, message=err.message, mode=mode)
        return grounder.ground(rgb, rec.sent, mode)

    outcomes: list[GroundingOutcome] = []
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        for i, out in enumerate(pool.map(one, records), 1):
            outcomes.append(out)
            if progress and (i % 10 == 0 or i == len(records)):
                print(f"\r{i}/{len(records)} evaluated", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        records = (
            synthetic_records(args.seed, args.n, args.amodal)
            if args.synthetic
            else read_records(args.data)[: args.n]
        )
    except (OSError, ValueError) as err:
        print(f"egm-eval: error: {err}", file=sys.stderr)
        return 2
    settings = EngineSettings(
        backend=args.backend, model=args.model, base_url=args.base_url, timeout=args.timeout
    )
    try:
        engine = create_engine(settings)
    except GroundingError as err:
        print(f"egm-eval: error: {err.status.value}: {err.message}", file=sys.stderr)
        return 3
    config = GrounderConfig(
        family=Family(args.family) if args.family else None,
        prompt_style=PromptStyle(args.prompt_style),
        max_pixels=DEFAULT_MAX_PIXELS,
        sampling=SamplingParams(max_new_tokens=args.max_new_tokens),
        timeout=args.timeout,
        thinking=not args.no_thinking,
    )
    with engine:
        outcomes = evaluate(Grounder(engine, config), records, args.concurrency)
    result = score(records, outcomes)
    result.update(model=engine.model_name, backend=args.backend, thinking=not args.no_thinking)
    if args.json:
        print(json.dumps(result))
    else:

        def fmt(v) -> str:
            return "-" if v is None else f"{v}"

        print(
            f"model {result['model']} ({args.backend}), {result['n']} samples, "
            f"thinking {'on' if result['thinking'] else 'off'}"
        )
        print(
            f"visible: mean IoU {fmt(result['mean_iou'])}  Acc@0.5 {fmt(result['visible_acc50'])}"
        )
        print(
            f"amodal:  mean IoU {fmt(result['amodal_mean_iou'])}  Acc@0.5 "
            f"{fmt(result['amodal_acc50'])}"
        )
        print(
            f"latency p50 {fmt(result['latency_ms_p50'])} ms  p95 "
            f"{fmt(result['latency_ms_p95'])} ms  tokens/request {fmt(result['tokens_mean'])}"
        )
        print(f"statuses: {result['statuses']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
