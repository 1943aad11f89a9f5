"""Engines behind one interface (:class:`~egm_ros.core.engine.Engine`), made by name.

Imports are lazy: the OpenAI-compatible engine needs only ``openai``; the in-process engines
pull in torch, transformers, vLLM or TensorRT-LLM only when chosen. The transformers engines
(``embedded``, ``transformers``) run in a worker process of their own
(:mod:`egm_ros.engines.process_engine`): their generation loop would otherwise hold the caller's
interpreter lock and starve a ROS executor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from egm_ros.core.engine import Engine
from egm_ros.core.types import GroundingError, Status

BACKENDS = ("embedded", "transformers", "vllm", "openai", "tensorrt_llm")
#: Backends whose model runs in the caller's interpreter unless wrapped: transformers'
#: ``generate`` is a Python loop per token. vLLM's V1 engine core and TensorRT-LLM's executor
#: worker already run in processes of their own; ``openai`` is a client.
OWN_PROCESS_BACKENDS = ("embedded", "transformers")
#: Torch intra-op threads of a CPU engine by default: on a CPU shared with other work, two or
#: more threads wait for each other at every matrix product (README, Benchmarks).
DEFAULT_CPU_THREADS = 1


def no_progress_bars() -> None:
    """No tqdm bars ("Loading weights") in a tool's or a node's log. huggingface_hub and
    transformers read this when they are imported, so a program calls it before loading an
    engine (``HF_HUB_DISABLE_PROGRESS_BARS=0`` in the environment keeps them)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@dataclass
class EngineSettings:
    """What a user chooses about the engine (CLI flags and node parameters map onto this)."""

    backend: str = "openai"
    model: str = ""
    base_url: str = "http://127.0.0.1:8000/v1"
    timeout: float = 60.0
    max_pixels: int | None = None
    api_key_env: str = "EGM_API_KEY"
    api_key_file: str | None = None
    verify_tls: bool = True
    #: Torch intra-op threads of the transformers engines on CPU (0: torch's default, one per
    #: core).
    cpu_threads: int = DEFAULT_CPU_THREADS
    #: Run the engine in a worker process of its own; None: for ``OWN_PROCESS_BACKENDS``.
    own_process: bool | None = None
    #: How much lower that worker's CPU priority is than its caller's (``os.nice``; 0: the
    #: same). Generation is throughput work; the node's image and command callbacks are
    #: latency work and must win a shared CPU (issue 21: 640x480 frames taken 9.3 Hz instead
    #: of 5.1, frame age at command p90 0.40 s instead of 0.95 s, answers as fast).
    worker_nice: int = 10
    #: openai: the server's image processor resizes every image to at most this many pixels
    #: (vLLM: ``--trust-request-mm-kwargs``), so frames of any size go to it undecoded; 0: off.
    server_max_pixels: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def create_engine(settings: EngineSettings) -> Engine:
    """Build the engine ``settings.backend`` names. Raises ``GroundingError`` with
    ``invalid_input`` for an unknown backend and ``engine_unavailable`` when the backend's
    libraries or model cannot be loaded."""
    backend = settings.backend.strip().lower()
    if backend in ("transformers", "vllm", "tensorrt_llm") and not settings.model:
        raise GroundingError(Status.INVALID_INPUT, f"the {backend} backend needs a model")
    if settings.server_max_pixels and backend != "openai":
        raise GroundingError(
            Status.INVALID_INPUT,
            f"server_max_pixels is for the openai backend (a server that resizes), not {backend!r}",
        )
    own_process = settings.own_process
    if own_process is None:
        own_process = backend in OWN_PROCESS_BACKENDS
    if own_process and backend in BACKENDS:
        from egm_ros.engines.process_engine import ProcessEngine

        return ProcessEngine(settings)  # which builds the engine with this, own_process False
    try:
        return _build(settings, backend)
    except ImportError as err:
        raise GroundingError(
            Status.ENGINE_UNAVAILABLE,
            f"backend {backend!r} is not installed here ({err.name or err}); see README, Engines",
        ) from err


def _build(settings: EngineSettings, backend: str) -> Engine:
    """The engine itself, in this process."""
    model = settings.model  # "" = the backend's default (the server's, the embedded model)
    extra = dict(settings.extra)
    if backend in ("embedded", "transformers", "vllm", "tensorrt_llm") and model:
        from egm_ros.engines.model_source import locate_model

        located = locate_model(model)  # seconds, not minutes of hub retries when offline
        if located != model and backend in ("embedded", "transformers"):
            extra.setdefault("display_name", model)  # a cached snapshot keeps the name
        model = located
    if backend == "openai":
        from egm_ros.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(
            settings.base_url,
            model or None,
            api_key_env=settings.api_key_env,
            api_key_file=settings.api_key_file,
            timeout=settings.timeout,
            verify_tls=settings.verify_tls,
            server_max_pixels=settings.server_max_pixels,
            **settings.extra,
        )
    if backend in ("embedded", "transformers"):
        from egm_ros.engines.transformers_engine import TransformersEngine

        extra.setdefault("num_threads", settings.cpu_threads)
        if backend == "embedded":
            from egm_ros.models.embedded import EMBEDDED_NAME, embedded_model_dir

            if not model:
                model = str(embedded_model_dir())
                extra.setdefault("display_name", EMBEDDED_NAME)
        return TransformersEngine(model, max_pixels=settings.max_pixels, **extra)
    if backend == "vllm":
        from egm_ros.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model, max_pixels=settings.max_pixels, **extra)
    if backend == "tensorrt_llm":
        from egm_ros.engines.tensorrt_llm_engine import TensorRTLLMEngine

        return TensorRTLLMEngine(model, max_pixels=settings.max_pixels, **extra)
    raise GroundingError(
        Status.INVALID_INPUT, f"unknown backend {settings.backend!r}; choose one of {BACKENDS}"
    )
