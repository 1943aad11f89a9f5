"""The one engine interface, at the bottom next to the grounder that uses it. Every backend
(OpenAI-compatible server, transformers, vLLM, TensorRT-LLM, the embedded model) in
:mod:`egm_ros.engines` implements :class:`Engine`; the grounder, the CLIs and the ROS node only
ever see this class, and nothing in the core imports an engine.

An engine turns (image, prompt text) into generated text. It knows nothing about boxes,
families or modes: prompts are built and answers parsed by the core.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from egm_ros.core.types import GroundingError, Status

#: Called while tokens stream in: (tokens generated so far, text so far).
ProgressCallback = Callable[[int, str], None]
#: Returns True once the text so far holds a complete answer, so generation can stop early.
StopCheck = Callable[[str], bool]


#: The EGM authors' token budget (``--max_tokens 4096`` in their ``vllm_infer.sh``): an EGM
#: reasoning can be long, and one cut short has no answer.
DEFAULT_MAX_NEW_TOKENS = 4096


@dataclass
class SamplingParams:
    """Sampling settings; the defaults are the EGM authors' evaluation settings."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 20
    repetition_penalty: float = 1.0


@dataclass(frozen=True)
class EncodedImage:
    """An image file's own bytes (JPEG or PNG) and their MIME type. The EGM authors send each
    image file as it is; re-encoding changes what the model sees (a JPEG q90 re-encode changed
    30 of 40 answers of a small model), so engines that send bytes send these unchanged."""

    data: bytes
    mime: str  # "image/jpeg" or "image/png"
    #: (width, height) as the header says; (0, 0) when not read.
    size: tuple[int, int] = (0, 0)


@dataclass
class EngineRequest:
    """One generation: an RGB image (H x W x 3, uint8, already resized by the caller's
    pixel policy) and the user text. Message layout is image first, then text, no system
    prompt (as the EGM checkpoints were trained)."""

    #: The pixels; None only when ``encoded`` is given to an engine that
    #: :attr:`~Engine.takes_encoded` (a frame that needed no decode).
    image: np.ndarray | None
    prompt: str
    #: The same pixels as ``image``, still encoded as the file or camera sent them (None when
    #: there are none, or the image was resized). Engines that send bytes (OpenAI-compatible,
    #: vLLM's chat) send these as they are; the others use ``image``.
    encoded: EncodedImage | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop_check: StopCheck | None = None
    on_progress: ProgressCallback | None = None
    cancel: threading.Event | None = None
    #: Passed to the model's chat template, e.g. ``{"enable_thinking": False}`` to make a
    #: thinking model answer directly (vLLM's server takes the same field).
    chat_template_kwargs: dict | None = None

    def pixels(self) -> np.ndarray:
        """``image``, for engines that read pixels (the grounder gives them pixels always)."""
        if self.image is None:
            raise GroundingError(Status.INVALID_INPUT, "this engine needs the image's pixels")
        return self.image


@dataclass
class EngineOutput:
    """Generated text with its completion-token count and the engine-side wall time."""

    text: str
    tokens: int
    inference_ms: float
    finish_reason: str = ""
    #: Tokens of the prompt the model read, image tokens included (0 where the engine does not
    #: know, e.g. a stream stopped before the server's usage record).
    prompt_tokens: int = 0


class Engine(abc.ABC):
    """A text generator over images. Implementations must be safe to call from several
    threads at once and should batch concurrent calls where the engine can."""

    #: Backend name as used by the ``backend`` parameter (e.g. ``"openai"``).
    backend: str = ""
    #: True for engines that send image bytes (a server's data URL): given
    #: ``EngineRequest.encoded`` they send it and never read ``image``, so a frame whose own
    #: bytes go as they are need not be decoded for them.
    takes_encoded: bool = False
    #: True for engines whose server resizes every image to :attr:`processor_max_pixels` itself
    #: (the OpenAI engine with ``server_max_pixels``): a frame over that many pixels may then
    #: go as its own bytes, undecoded, and the server's processor does what the node's resize
    #: would have done.
    resizes_encoded: bool = False

    @property
    @abc.abstractmethod
    def model_name(self) -> str:
        """The model as the engine names it (reported in every result)."""

    @property
    def model_config(self) -> dict | None:
        """The model's ``config.json`` as a dict where the engine can read it (for family
        auto-detection); ``None`` when unknown (e.g. a remote server)."""
        return None

    @abc.abstractmethod
    def generate(self, requests: Sequence[EngineRequest], timeout: float) -> list[EngineOutput]:
        """Run the requests together (batched where possible) and return one output each, in
        order. Raises :class:`egm_ros.core.types.GroundingError` with status
        ``engine_unavailable``, ``engine_error``, ``timeout`` or ``cancelled``; never anything
        else for engine faults."""

    @property
    def processor_max_pixels(self) -> int | None:
        """The most pixels the model's image processor passes on to the model (its own limit,
        lowered by a configured ``max_pixels``); None where unknown (e.g. a remote server)."""
        return None

    def health(self) -> bool:
        """Cheap check that the engine can serve now."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release the model / connections. Idempotent."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
