"""``egm-ground IMAGE PROMPT``: ground a referring expression in an image file from the shell.

Exit codes: 0 for ``ok`` and ``not_found`` (both are answers), 2 for invalid input (also bad
flags), 3 when the engine is unavailable, 4 on timeout, 1 for any other error. An error is one
line on stderr, never a traceback; ``--json`` still prints the JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from egm_ros.cli.common import (
    add_cpu_threads_flag,
    add_server_max_pixels_flag,
    answer_stream,
    engine_settings,
    grounder_config,
)
from egm_ros.core.engine import DEFAULT_MAX_NEW_TOKENS
from egm_ros.core.families import Family
from egm_ros.core.prompts import PromptStyle
from egm_ros.core.types import GroundingError, GroundingOutcome, Mode, Status
from egm_ros.engines import BACKENDS, create_engine, no_progress_bars

#: EGM-Tiny, shipped in the package: works on a fresh machine with no GPU and no download.
DEFAULT_BACKEND = "embedded"
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"

EXIT_CODES = {
    Status.OK: 0,
    Status.NOT_FOUND: 0,
    Status.INVALID_INPUT: 2,
    Status.ENGINE_UNAVAILABLE: 3,
    Status.TIMEOUT: 4,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="egm-ground",
        description="Ground a referring expression in an image with an EGM model: prints the "
        "target's visible (and with --amodal, full-extent) box in image pixels.",
    )
    parser.add_argument("image", help="image file (JPEG, PNG, ...)")
    parser.add_argument("prompt", help='referring expression, e.g. "the mug behind the laptop"')
    parser.add_argument(
        "--amodal",
        action="store_true",
        help="also predict the full extent of a partly hidden target",
    )
    _add_engine_flags(parser)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help=f"generation limit per query (default {DEFAULT_MAX_NEW_TOKENS}, as the EGM authors)",
    )
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="downscale larger images to this many pixels before sending",
    )
    add_server_max_pixels_flag(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--out", default=None, help="write an annotated PNG (visible box solid, amodal dashed)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log engine activity")
    return parser


def _add_engine_flags(parser: argparse.ArgumentParser) -> None:
    """Which engine and model, and how to reach and trust a server."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help=f"engine (default: openai with --base-url, else {DEFAULT_BACKEND})",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible server (vllm serve / trtllm-serve); implies --backend openai "
        f"(default {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--model",
        default="",
        help="model folder or name (openai: default = the server's first model)",
    )
    parser.add_argument(
        "--family",
        choices=[f.value for f in Family],
        default=None,
        help="answer format; default: detected from the model",
    )
    parser.add_argument(
        "--prompt-style",
        choices=[s.value for s in PromptStyle],
        default=PromptStyle.EGM.value,
        help="egm: EGM checkpoints; base: plain Qwen3-VL models",
    )
    parser.add_argument(
        "--api-key-env",
        default="EGM_API_KEY",
        help="environment variable holding the API key (default EGM_API_KEY)",
    )
    parser.add_argument("--api-key-file", default=None, help="file holding the API key")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the server's TLS certificate"
    )
    add_cpu_threads_flag(parser)


def resolve_backend(args: argparse.Namespace) -> str | None:
    """``--base-url`` implies ``--backend openai``; with another backend it is an error (its
    line). Fills in the defaults of both."""
    if args.base_url is not None and args.backend not in (None, "openai"):
        return f"--base-url is for --backend openai, not --backend {args.backend}"
    if args.backend is None:
        args.backend = "openai" if args.base_url is not None else DEFAULT_BACKEND
    if args.base_url is None:
        args.base_url = DEFAULT_BASE_URL
    return None


def run(args: argparse.Namespace) -> GroundingOutcome:
    """Check the prompt and load the image, then build the engine and ground (so bad input is
    said before any model loads); every failure is an outcome, not a raise."""
    from egm_ros.core.compressed import read_image_file
    from egm_ros.core.grounder import Grounder
    from egm_ros.core.prompts import validate_command

    mode = Mode.AMODAL if args.amodal else Mode.VISIBLE
    try:
        validate_command(args.prompt)
        rgb, encoded = read_image_file(args.image)  # the file's own bytes go out
    except GroundingError as err:
        return GroundingOutcome(
            status=err.status, message=err.message, prompt=args.prompt, mode=mode
        )
    settings = engine_settings(args)
    try:
        engine = create_engine(settings)
    except GroundingError as err:
        return GroundingOutcome(
            status=err.status, message=err.message, prompt=args.prompt, mode=mode
        )
    config = grounder_config(args, mode)
    if args.backend == "embedded":  # stderr: the JSON on stdout stays clean
        from egm_ros.models.embedded import NOTICE

        print(f"egm-ground: note: {NOTICE}", file=sys.stderr)
    with engine:
        outcome = Grounder(engine, config).ground(rgb, args.prompt, encoded=encoded)
    if args.out and not outcome.status.is_error:
        _write_annotated(args.out, rgb, outcome)
    return outcome


def _write_annotated(path: str, rgb, outcome: GroundingOutcome) -> None:
    from egm_ros.core.annotate import draw_result, save_png

    save_png(
        draw_result(rgb, outcome.objects, caption=outcome.prompt, status_text=outcome.status.value),
        path,
    )


def summary(outcome: GroundingOutcome) -> str:
    """The human-readable answer printed without ``--json``."""
    lines = [
        f"status: {outcome.status.value}" + (f" ({outcome.message})" if outcome.message else "")
    ]
    for i, obj in enumerate(outcome.objects, 1):
        name = f" {obj.label!r}" if obj.label else ""
        if obj.visible is not None:
            lines.append(f"object {i}{name}: visible [x1, y1, x2, y2] = {obj.visible.as_list()}")
        else:
            lines.append(f"object {i}{name}: not visible")
        if outcome.mode is Mode.AMODAL:
            amodal = obj.amodal.as_list() if obj.amodal else "not predicted"
            lines.append(f"{' ' * len(f'object {i}{name}')}  amodal  [x1, y1, x2, y2] = {amodal}")
    lines.append(
        f"model: {outcome.model or '-'}   tokens: {outcome.tokens}   "
        f"latency: {outcome.latency.total_ms:.0f} ms "
        f"(inference {outcome.latency.inference_ms:.0f} ms)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    conflict = resolve_backend(args)
    if conflict is not None:
        print(f"egm-ground: error: {conflict}", file=sys.stderr)
        return 2
    no_progress_bars()  # on stderr
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    answer = answer_stream()
    try:
        outcome = run(args)
    except KeyboardInterrupt:
        print("egm-ground: error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - one clear line, never a traceback
        outcome = GroundingOutcome(
            status=Status.ENGINE_ERROR, message=f"{type(err).__name__}: {err}", prompt=args.prompt
        )
    if args.json:
        print(json.dumps(outcome.to_json_dict()), file=answer, flush=True)
    elif not outcome.status.is_error:
        print(summary(outcome), file=answer, flush=True)
    if outcome.status.is_error:
        print(f"egm-ground: error: {outcome.status.value}: {outcome.message}", file=sys.stderr)
    return EXIT_CODES.get(outcome.status, 1)


if __name__ == "__main__":
    sys.exit(main())
