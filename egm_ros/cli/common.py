"""What the command-line tools share: engine and grounder settings from their common flags, and
a stdout that carries only the answer."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from egm_ros.core.engine import SamplingParams
from egm_ros.core.families import Family
from egm_ros.core.grounder import DEFAULT_MAX_PIXELS, GrounderConfig
from egm_ros.core.prompts import PromptStyle
from egm_ros.core.types import Mode
from egm_ros.engines import DEFAULT_CPU_THREADS, EngineSettings


def add_cpu_threads_flag(parser: argparse.ArgumentParser) -> None:
    """--cpu-threads, as the node's ``cpu_threads`` parameter."""
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=DEFAULT_CPU_THREADS,
        help=f"torch intra-op threads of the embedded/transformers engine on CPU (default "
        f"{DEFAULT_CPU_THREADS}, which holds up on a CPU shared with other work; 0 = one per core)",
    )


def add_server_max_pixels_flag(parser: argparse.ArgumentParser) -> None:
    """--server-max-pixels, as the node's ``server_max_pixels`` parameter."""
    parser.add_argument(
        "--server-max-pixels",
        type=int,
        default=0,
        help="openai backend: the server's image processor resizes images to at most this many "
        "pixels (vLLM: start it with --trust-request-mm-kwargs); images go to it as they are "
        "(default 0: off, egm_ros resizes)",
    )


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    """From --backend, --model, --base-url, --timeout, --max-pixels, --api-key-env,
    --api-key-file, --insecure, --cpu-threads and --server-max-pixels."""
    return EngineSettings(
        backend=args.backend,
        model=args.model,
        base_url=args.base_url,
        timeout=args.timeout,
        max_pixels=args.max_pixels,
        api_key_env=args.api_key_env,
        api_key_file=args.api_key_file,
        verify_tls=not args.insecure,
        cpu_threads=args.cpu_threads,
        server_max_pixels=getattr(args, "server_max_pixels", 0),
    )


def grounder_config(
    args: argparse.Namespace, mode: Mode = Mode.VISIBLE, thinking: bool = True
) -> GrounderConfig:
    """From --family, --prompt-style, --max-pixels, --max-new-tokens, --timeout (and
    --temperature where the tool has it)."""
    return GrounderConfig(
        family=Family(args.family) if args.family else None,
        prompt_style=PromptStyle(args.prompt_style),
        mode=mode,
        max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
        sampling=SamplingParams(
            max_new_tokens=args.max_new_tokens, temperature=getattr(args, "temperature", 0.0)
        ),
        timeout=args.timeout,
        thinking=thinking,
    )


def answer_stream() -> TextIO:
    """A stream for the answer only. Engine libraries (vLLM and its engine processes, also at
    exit) write logs to file descriptor 1; it is pointed at stderr for the rest of the
    process, and the answer goes to a duplicate of the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(saved, "w", buffering=1)
