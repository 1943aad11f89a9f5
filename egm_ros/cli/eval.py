"""``egm-eval``: score any engine on a grounding dataset.

Inputs: ``--synthetic --seed S --n N`` (held-out synthetic scenes, made in memory; ``--amodal``
scores amodal boxes too) or ``--data FILE.jsonl`` in the EGM authors' format (their RefCOCO
files work as they are; amodal sets are recognised by ``modal_bbox``; image paths under
``--image-root``, default ``$BASE_IMG_DIR`` or the file's folder). A file's own JPEG/PNG bytes
are sent, as the authors do, unless the image must be resized.

Protocols: ``project`` (default) runs the project's grounder, as the node and ``egm-ground``
do: the answer after ``</think>`` only, boxes in float pixels, an amodal record asks both the
visible and the amodal query. ``authors`` reproduces the EGM authors' script
(:mod:`egm_ros.cli.eval_authors`): one query per record, the first ``"bbox_2d"`` anywhere in
the output (reasoning included), integer boxes.

Prints mean IoU and Acc@0.5 (IoU > 0.5, as the authors count) for visible and amodal boxes,
latency mean/p50/p95 and generated tokens per request, and counts by status; ``--json`` prints
one object. A failed request scores IoU 0.

Exit codes: 0 when the evaluation ran, 2 for bad input (flags, data file), 3 when the engine is
unavailable (at start, or for every request).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

import numpy as np

from egm_ros.cli.common import (
    add_cpu_threads_flag,
    add_server_max_pixels_flag,
    engine_settings,
    grounder_config,
)
from egm_ros.cli.eval_authors import AuthorsResult, evaluate_authors
from egm_ros.core.compressed import read_image_file
from egm_ros.core.engine import DEFAULT_MAX_NEW_TOKENS
from egm_ros.core.families import Family
from egm_ros.core.geometry import iou
from egm_ros.core.grounder import Grounder
from egm_ros.core.prompts import PromptStyle
from egm_ros.core.types import GroundingError, GroundingOutcome, Mode, Status
from egm_ros.data.eval_records import EvalRecord, read_records, synthetic_records
from egm_ros.engines import BACKENDS, create_engine

DEFAULT_SYNTHETIC_N = 200


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="egm-eval",
        description="Score an engine on a grounding dataset (visible and amodal boxes).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", action="store_true", help="held-out synthetic scenes")
    src.add_argument("--data", help="JSONL file in the EGM authors' evaluation format")
    p.add_argument(
        "--image-root",
        default=os.environ.get("BASE_IMG_DIR") or None,
        help="--data: folder the records' image paths are relative to (the authors' "
        "BASE_IMG_DIR, their repository folder); default $BASE_IMG_DIR, else the file's folder",
    )
    p.add_argument(
        "--protocol",
        choices=("project", "authors"),
        default="project",
        help="project: the grounder (answer after </think>); authors: the EGM authors' "
        "evaluation script exactly (their prompt, parsing, integer boxes)",
    )
    p.add_argument("--seed", type=int, default=0, help="first synthetic scene (held out: < 1e6)")
    p.add_argument(
        "--n",
        type=_positive_int,
        default=None,
        help=f"samples: synthetic (default {DEFAULT_SYNTHETIC_N}) or the first N of --data",
    )
    p.add_argument("--amodal", action="store_true", help="synthetic: also score amodal boxes")
    p.add_argument("--width", type=_positive_int, default=None, help="synthetic scene width")
    p.add_argument("--height", type=_positive_int, default=None, help="synthetic scene height")
    p.add_argument("--backend", choices=BACKENDS, default="embedded")
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--model", default="", help="model folder or name")
    p.add_argument("--family", choices=[f.value for f in Family], default=None)
    p.add_argument(
        "--prompt-style", choices=[s.value for s in PromptStyle], default=PromptStyle.EGM.value
    )
    p.add_argument(
        "--no-thinking",
        action="store_true",
        help="ask the model to answer without reasoning (enable_thinking=False)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help=f"generation limit per query (default {DEFAULT_MAX_NEW_TOKENS}, as the EGM authors)",
    )
    p.add_argument("--max-pixels", type=_positive_int, default=None)
    add_server_max_pixels_flag(p)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--api-key-env", default="EGM_API_KEY")
    p.add_argument("--api-key-file", default=None)
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    add_cpu_threads_flag(p)
    p.add_argument("--concurrency", type=_positive_int, default=1, help="requests in flight")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _ious(rec: EvalRecord, out: GroundingOutcome) -> tuple[float, float | None]:
    """(visible IoU, amodal IoU or None for a visible-only record); 0 for a failed request."""
    obj = out.objects[0] if out.status is Status.OK and out.objects else None
    visible = iou(obj.visible, rec.visible) if obj and obj.visible else 0.0
    if rec.amodal is None:
        return visible, None
    return visible, iou(obj.amodal, rec.amodal) if obj and obj.amodal else 0.0


def _acc(values: list[float]) -> float | None:
    return round(float(np.mean([v > 0.5 for v in values])), 4) if values else None


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def score(records: Sequence[EvalRecord], outcomes: Sequence[GroundingOutcome]) -> dict:
    """The metrics; the keys are a user-facing contract."""
    vis, amo = [], []
    by_type: dict[str, list[float]] = defaultdict(list)
    amodal_by_type: dict[str, list[float]] = defaultdict(list)
    for rec, out in zip(records, outcomes, strict=True):
        v, a = _ious(rec, out)
        vis.append(v)
        if a is not None:
            amo.append(a)
        if rec.expr_type:
            by_type[rec.expr_type].append(v)
            if a is not None:
                amodal_by_type[rec.expr_type].append(a)
    latencies = [o.latency.total_ms for o in outcomes]
    tokens = [o.tokens for o in outcomes]
    return _metrics(vis, amo, (by_type, amodal_by_type), latencies, tokens, outcomes)


def score_authors(records: Sequence[EvalRecord], results: Sequence[AuthorsResult]) -> dict:
    """The same keys under the authors' rules: one IoU per record, counted as visible or, for
    an amodal record (its amodal query scored on ``bbox``), as amodal."""
    vis, amo = [], []
    by_type: dict[str, list[float]] = defaultdict(list)
    amodal_by_type: dict[str, list[float]] = defaultdict(list)
    for rec, res in zip(records, results, strict=True):
        (amo if rec.amodal is not None else vis).append(res.iou)
        if rec.expr_type:
            (amodal_by_type if rec.amodal is not None else by_type)[rec.expr_type].append(res.iou)
    latencies = [r.latency_ms for r in results]
    tokens = [r.tokens for r in results]
    return _metrics(vis, amo, (by_type, amodal_by_type), latencies, tokens, results)


def _metrics(
    vis: list[float],
    amo: list[float],
    by_type: tuple[dict[str, list[float]], dict[str, list[float]]],
    latencies: list[float],
    tokens: list[int],
    outcomes: Sequence[GroundingOutcome | AuthorsResult],
) -> dict:
    """``by_type``: (visible, amodal) IoUs per kind of expression."""
    lat = np.asarray(latencies, float)
    visible_by_type, amodal_by_type = by_type
    counted = visible_by_type or amodal_by_type
    return {
        "n": len(outcomes),
        "visible_acc50": _acc(vis),
        "amodal_acc50": _acc(amo),
        "mean_iou": _mean(vis),
        "amodal_mean_iou": _mean(amo),
        "latency_ms_mean": round(float(lat.mean()), 1) if lat.size else None,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
        "tokens_mean": round(float(np.mean(tokens)), 1) if tokens else None,
        "statuses": dict(Counter(o.status.value for o in outcomes)),
        "visible_acc50_by_type": {t: _acc(v) for t, v in sorted(visible_by_type.items())},
        "amodal_acc50_by_type": {t: _acc(v) for t, v in sorted(amodal_by_type.items())},
        "n_by_type": {t: len(v) for t, v in sorted(counted.items())},
    }


def evaluate(
    grounder: Grounder, records: Sequence[EvalRecord], concurrency: int = 1
) -> list[GroundingOutcome]:
    """Ground every record (``concurrency`` in flight), in order."""

    def one(rec: EvalRecord) -> GroundingOutcome:
        mode = Mode.VISIBLE if rec.amodal is None else Mode.AMODAL
        try:
            # A file's own bytes go out as they are (as the authors send them).
            rgb, encoded = (rec.rgb, None) if rec.rgb is not None else read_image_file(rec.image)
        except GroundingError as err:
            return GroundingOutcome(status=err.status, message=err.message, mode=mode)
        return grounder.ground(rgb, rec.sent, mode, encoded=encoded)

    progress = sys.stderr.isatty()
    outcomes: list[GroundingOutcome] = []
    with ThreadPoolExecutor(concurrency) as pool:
        for i, out in enumerate(pool.map(one, records), 1):
            outcomes.append(out)
            if progress:
                print(f"\r{i}/{len(records)} evaluated", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return outcomes


def summary(result: dict) -> str:
    def fmt(v: object) -> str:
        return "-" if v is None else str(v)

    lines = [
        f"model {result['model']} ({result['backend']}), {result['n']} samples, "
        f"{result.get('protocol', 'project')} protocol, "
        f"thinking {'on' if result['thinking'] else 'off'}",
        f"visible: mean IoU {fmt(result['mean_iou'])}  Acc@0.5 {fmt(result['visible_acc50'])}",
        f"amodal:  mean IoU {fmt(result['amodal_mean_iou'])}  "
        f"Acc@0.5 {fmt(result['amodal_acc50'])}",
        f"latency mean {fmt(result['latency_ms_mean'])} ms  p50 {fmt(result['latency_ms_p50'])}"
        f" ms  p95 {fmt(result['latency_ms_p95'])} ms"
        f"  tokens/request {fmt(result['tokens_mean'])}",
        "statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(result["statuses"].items())),
    ]
    if result["visible_acc50_by_type"]:
        lines.append(
            "visible Acc@0.5 by expression: "
            + ", ".join(f"{k} {v}" for k, v in result["visible_acc50_by_type"].items())
        )
    if result["amodal_acc50_by_type"]:
        lines.append(
            "amodal Acc@0.5 by expression: "
            + ", ".join(f"{k} {v}" for k, v in result["amodal_acc50_by_type"].items())
        )
    return "\n".join(lines)


def _load(args: argparse.Namespace) -> list[EvalRecord]:
    if (args.width is None) != (args.height is None):
        raise ValueError("--width and --height go together")
    if args.synthetic:
        size = None if args.width is None else (args.width, args.height)
        return synthetic_records(args.seed, args.n or DEFAULT_SYNTHETIC_N, args.amodal, size)
    if args.width is not None:
        raise ValueError("--width/--height render synthetic scenes: use them with --synthetic")
    records = read_records(args.data, args.image_root)
    return records[: args.n] if args.n else records


def _output_stream(backend: str) -> TextIO:
    """In-process engines (vLLM above all) write logs to file descriptor 1; the result then
    goes to a saved copy of the real stdout, as ``egm-ground`` does."""
    if backend == "openai":
        return sys.stdout
    from egm_ros.cli.common import answer_stream

    return answer_stream()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        records = _load(args)
    except (OSError, ValueError) as err:
        print(f"egm-eval: error: {err}", file=sys.stderr)
        return 2
    if not records:
        print("egm-eval: error: no records to evaluate", file=sys.stderr)
        return 2
    out = _output_stream(args.backend)
    settings = engine_settings(args)
    try:
        engine = create_engine(settings)
    except GroundingError as err:
        print(f"egm-eval: error: {err.status.value}: {err.message}", file=sys.stderr)
        return 3 if err.status is Status.ENGINE_UNAVAILABLE else 2
    config = grounder_config(args, thinking=not args.no_thinking)
    with engine:
        if args.protocol == "authors":
            grounder = Grounder(engine, config)  # for the family only
            outcomes = evaluate_authors(
                engine,
                records,
                grounder.family,
                config.sampling,
                args.timeout,
                thinking=config.thinking,
                concurrency=args.concurrency,
            )
            result = score_authors(records, outcomes)
        else:
            outcomes = evaluate(Grounder(engine, config), records, args.concurrency)
            result = score(records, outcomes)
        model = engine.model_name
    result.update(
        model=model,
        backend=args.backend,
        protocol=args.protocol,
        thinking=not args.no_thinking,
        prompt_style="egm" if args.protocol == "authors" else args.prompt_style,
        source="synthetic" if args.synthetic else str(args.data),
    )
    print(json.dumps(result) if args.json else summary(result), file=out, flush=True)
    if all(o.status is Status.ENGINE_UNAVAILABLE for o in outcomes):
        print("egm-eval: error: the engine was unavailable for every request", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
