"""The grounder: command + RGB image in, visible (and amodal) pixel boxes out, through any
:class:`~egm_ros.core.engine.Engine`.

It owns everything model-specific that is not the engine: the prompt for the family and mode,
the resize policy, early stop once the answer is complete, parsing back to source pixels, and
pairing the visible and amodal answers. EGM answers an amodal query with the amodal box only,
so amodal mode sends the visible and the amodal query in one ``generate`` call: the engine
batches them and the latency is about that of one query.

``ground`` never raises: every failure becomes a :class:`GroundingOutcome` with an error status.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from egm_ros.core.engine import (
    EncodedImage,
    Engine,
    EngineOutput,
    EngineRequest,
    ProgressCallback,
    SamplingParams,
)
from egm_ros.core.families import (
    QWEN2_5_MAX_PIXELS,
    Family,
    detect_family,
    model_input_size,
)
from egm_ros.core.geometry import iou
from egm_ros.core.images import effective_max_pixels, limit_pixels
from egm_ros.core.parsing import AnswerComplete, ParsedAnswer, answer_complete, parse_answer
from egm_ros.core.prompts import PromptStyle, build_prompt, declared_templates, validate_command
from egm_ros.core.types import (
    Box,
    GroundedObject,
    GroundingError,
    GroundingOutcome,
    Latency,
    Mode,
    Status,
)

log = logging.getLogger(__name__)

#: The Qwen2.5/3-VL processors' default upper bound (1280 patches of 28 x 28 pixels). Sending
#: more pixels only costs transfer and resize time: the processor would shrink them anyway.
DEFAULT_MAX_PIXELS = 1280 * 28 * 28


@dataclass
class GrounderConfig:
    """Settings of a :class:`Grounder` (the node maps its ROS parameters onto these)."""

    family: Family | None = None  # None: detect from the engine's model config / name
    prompt_style: PromptStyle = PromptStyle.EGM
    mode: Mode = Mode.VISIBLE
    max_pixels: int = DEFAULT_MAX_PIXELS
    sampling: SamplingParams = field(default_factory=SamplingParams)
    timeout: float = 60.0
    max_prompt_chars: int = 500
    early_stop: bool = True
    #: False: ask a thinking model to answer without reasoning (``enable_thinking=False``).
    thinking: bool = True


@dataclass(frozen=True)
class PreparedImage:
    """An image as the engine gets it. Its own bytes (``encoded``) go only when they are exactly
    the pixels the boxes are parsed against: the frame needs no resize and was decoded whole
    (or not at all). A resized or reduced-decoded image goes as pixels instead, since a server
    would otherwise see the full frame while the answer is parsed against the smaller one."""

    #: Pixels after the resize policy (H x W x 3 uint8); None when only the bytes go.
    image: np.ndarray | None
    encoded: EncodedImage | None
    #: (width, height) of what the engine gets, before the model's own processor.
    size: tuple[int, int]
    #: (width, height) that boxes are reported in: the frame as the camera sent it.
    source_size: tuple[int, int]


class Grounder:
    """Thread-safe: the node calls :meth:`ground` from several workers at once."""

    def __init__(self, engine: Engine, config: GrounderConfig | None = None) -> None:
        self.engine = engine
        self.config = config or GrounderConfig()
        self._family = self.config.family
        self._family_lock = threading.Lock()
        self._declared: dict[Mode, str] | None = None
        self._declared_read = False

    @property
    def family(self) -> Family:
        if self._family is None:
            with self._family_lock:
                if self._family is None:
                    self._family = detect_family(self.engine.model_config, self.engine.model_name)
        return self._family

    @property
    def declared_prompts(self) -> dict[Mode, str] | None:
        """The wording the model's own config declares it was trained with (see
        :func:`~egm_ros.core.prompts.declared_templates`); ``None`` for the family's."""
        if not self._declared_read:
            with self._family_lock:
                try:
                    self._declared = declared_templates(self.engine.model_config)
                except ValueError as err:
                    raise GroundingError(Status.ENGINE_ERROR, f"model config: {err}") from None
                self._declared_read = True
        return self._declared

    @property
    def max_pixels(self) -> int:
        """The most pixels an image needs to reach the engine with (0: no limit): the
        configured limit, lowered to what the model's processor passes on where the engine
        knows it. A caller may decode a frame smaller (a reduced JPEG decode) as long as it
        keeps this many."""
        return effective_max_pixels(self.engine.processor_max_pixels, self.config.max_pixels) or 0

    def ground(
        self,
        rgb: np.ndarray | None,
        prompt: str,
        mode: Mode | str | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        received_at: float | None = None,
        started_at: float | None = None,
        timeout: float | None = None,
        encoded: EncodedImage | None = None,
        source_size: tuple[int, int] | None = None,
    ) -> GroundingOutcome:
        """Ground ``prompt`` in ``rgb`` (H x W x 3 uint8). Times are ``time.monotonic()``:
        ``received_at`` is when the command arrived and ``started_at`` when work on it began
        (e.g. before the caller decoded the image), so the breakdown counts queueing as waiting
        and the caller's decoding as preprocessing. ``timeout`` (seconds, default the config's)
        bounds the engine call, e.g. to what is left of a request's budget after queueing.
        ``encoded``: ``rgb``'s own JPEG/PNG bytes (an image file, a compressed frame), sent as
        they are when the image needs no resize; otherwise the engine encodes the pixels.
        ``source_size`` (width, height): the frame ``rgb`` was decoded from at a reduced scale;
        boxes come back in its pixels (default: ``rgb``'s own size). ``rgb`` may be None for a
        frame that was not decoded because its bytes go as they are (:meth:`sends_as_is`)."""
        start = time.monotonic()
        started_at = start if started_at is None else started_at
        received_at = started_at if received_at is None else received_at
        outcome = GroundingOutcome(status=Status.OK, prompt=prompt, mode=self.config.mode)
        latency = Latency(waiting_ms=(started_at - received_at) * 1000.0)
        try:
            outcome.mode = self.config.mode if mode is None else Mode.parse(mode)
            outcome.model = self.engine.model_name
            sent = validate_command(prompt, self.config.max_prompt_chars)
            outcome.prompt = sent
            prepared = self.prepare(rgb, encoded, source_size)
            latency.preprocessing_ms = (time.monotonic() - started_at) * 1000.0
            budget = self.config.timeout if timeout is None else timeout
            self._run(outcome, prepared, sent, on_progress, cancel, latency, budget)
        except GroundingError as err:
            outcome.status, outcome.message = err.status, err.message
        except Exception as err:  # noqa: BLE001 - the node must never die on one request
            log.exception("grounding failed unexpectedly")
            outcome.status = Status.ENGINE_ERROR
            outcome.message = f"internal error: {type(err).__name__}: {err}"
        latency.total_ms = (time.monotonic() - received_at) * 1000.0
        outcome.latency = latency
        return outcome

    def sends_as_is(self, size: tuple[int, int]) -> bool:
        """True when a frame of ``size`` (width, height) with its own JPEG/PNG bytes goes to the
        engine as those bytes alone: the engine sends bytes (:attr:`Engine.takes_encoded`) and
        the frame is within ``max_pixels``, or the engine's server resizes it to exactly the
        limit this grounder wants (:attr:`Engine.resizes_encoded`). The caller then need not
        decode it."""
        width, height = size
        limit = self.config.max_pixels
        engine = self.engine
        resized_there = engine.resizes_encoded and self.max_pixels == engine.processor_max_pixels
        return (
            engine.takes_encoded
            and width >= 2
            and height >= 2
            and (limit <= 0 or width * height <= limit or resized_there)
        )

    def prepare(
        self,
        rgb: np.ndarray | None,
        encoded: EncodedImage | None = None,
        source_size: tuple[int, int] | None = None,
    ) -> PreparedImage:
        """What the engine gets for ``rgb`` (see :meth:`ground` for the arguments): the resize
        policy applied, and ``encoded`` kept only when it is exactly those pixels. ``rgb`` may
        be None when :meth:`sends_as_is` holds for ``source_size`` and ``encoded`` is given.
        Raises ``GroundingError(invalid_input)``."""
        if rgb is None:
            if encoded is None or source_size is None or not self.sends_as_is(source_size):
                raise GroundingError(
                    Status.INVALID_INPUT, "no pixels, and the frame's bytes cannot go as they are"
                )
            size = (int(source_size[0]), int(source_size[1]))
            return PreparedImage(None, encoded, size, size)
        _check_pixels(rgb)
        size = _source_size(rgb, source_size)
        whole = size == (rgb.shape[1], rgb.shape[0])
        if encoded is not None and whole and self.sends_as_is(size):
            return PreparedImage(rgb, encoded, size, size)  # no resize here: the bytes go
        image = limit_pixels(rgb, self.config.max_pixels)
        # Resized, or decoded reduced: those bytes are not the pixels the model gets.
        if image is not rgb or not whole:
            encoded = None
        return PreparedImage(image, encoded, (image.shape[1], image.shape[0]), size)

    def _run(
        self,
        outcome: GroundingOutcome,
        prepared: PreparedImage,
        sent: str,
        on_progress: ProgressCallback | None,
        cancel: threading.Event | None,
        latency: Latency,
        timeout: float,
    ) -> None:
        modes = [Mode.VISIBLE] if outcome.mode is Mode.VISIBLE else [Mode.VISIBLE, Mode.AMODAL]
        requests = self._requests(modes, prepared, sent, on_progress, cancel)
        t0 = time.monotonic()
        outputs = self.engine.generate(requests, timeout=timeout)
        latency.inference_ms = (time.monotonic() - t0) * 1000.0
        outcome.model = self.engine.model_name  # a server's default model is known only now
        outcome.tokens = sum(o.tokens for o in outputs)
        outcome.raw_text = outputs[0].text
        # Qwen2.5-VL answers in the pixels of its processor's resize, bounded by its limit.
        limit = self.engine.processor_max_pixels or QWEN2_5_MAX_PIXELS
        input_size = model_input_size(self.family, *prepared.size, max_pixels=limit)
        parsed = [
            self._parse(out, prepared.source_size, input_size, clip=(m is Mode.VISIBLE))
            for out, m in zip(outputs, modes, strict=True)
        ]
        visible = parsed[0]
        amodal = parsed[1] if len(parsed) > 1 else None
        outcome.reasoning = visible.reasoning
        if amodal is not None and amodal.reasoning:
            outcome.reasoning = f"{visible.reasoning}\n\n[amodal] {amodal.reasoning}".strip()
        outcome.objects = _pair(visible, amodal)
        outcome.status, outcome.message = _combined_status(visible, amodal, outcome.objects)

    def _requests(
        self,
        modes: list[Mode],
        prepared: PreparedImage,
        sent: str,
        on_progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> list[EngineRequest]:
        """One engine request per mode, sent together so the engine batches them."""
        family = self.family
        declared = self.declared_prompts
        # Nothing before a </think> stops generation while the model may think, whatever the
        # prompt style.
        thinking = self.config.thinking
        template_kwargs = None if thinking else {"enable_thinking": False}
        stop_check = AnswerComplete(family, thinking) if self.config.early_stop else None
        return [
            EngineRequest(
                image=prepared.image,
                encoded=prepared.encoded,
                prompt=build_prompt(sent, m, family, self.config.prompt_style, declared),
                sampling=replace(self.config.sampling),
                stop_check=stop_check,
                # Feedback follows the first query; both advance at the same pace when batched.
                on_progress=on_progress if i == 0 else None,
                cancel=cancel,
                chat_template_kwargs=template_kwargs,
            )
            for i, m in enumerate(modes)
        ]

    def _parse(
        self,
        output: EngineOutput,
        source_size: tuple[int, int],
        input_size: tuple[int, int],
        clip: bool,
    ) -> ParsedAnswer:
        """The answer in source pixels. EGM checkpoints always reason first, so a turn that
        ends without ``</think>`` is truncated; a base model may be a non-thinking one
        (Qwen3-VL Instruct), whose ended turn without any think tag is its answer."""
        thinking = self.config.thinking
        parsed = parse_answer(
            output.text,
            self.family,
            source_size,
            model_input_size=input_size,
            clip=clip,
            thinking=thinking and self.config.prompt_style is PromptStyle.EGM,
        )
        return _checked(parsed, output, self.family, thinking)


def _check_pixels(rgb: object) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise GroundingError(Status.INVALID_INPUT, f"expected an H x W x 3 image, got {shape}")
    if rgb.dtype != np.uint8:
        raise GroundingError(Status.INVALID_INPUT, f"expected uint8 pixels, got {rgb.dtype}")
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise GroundingError(
            Status.INVALID_INPUT, f"image too small: {rgb.shape[1]}x{rgb.shape[0]}"
        )


def _source_size(rgb: np.ndarray, given: tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) that boxes are reported in: ``given`` (a reduced decode's source frame,
    never smaller than what was decoded) or the image's own."""
    own = (rgb.shape[1], rgb.shape[0])
    if given is None:
        return own
    width, height = (int(v) for v in given)
    if width < own[0] or height < own[1]:
        raise GroundingError(
            Status.INVALID_INPUT,
            f"source size {width}x{height} is smaller than the decoded image {own[0]}x{own[1]}",
        )
    return width, height


def _checked(
    parsed: ParsedAnswer, output: EngineOutput, family: Family, thinking: bool
) -> ParsedAnswer:
    """A generation cut off by the token limit before a complete answer is never ``ok`` or
    ``not_found``: what it holds may be the start of a longer answer (more boxes, a different
    target) or prose the model was still writing."""
    if output.finish_reason != "length" or parsed.status is Status.MALFORMED_OUTPUT:
        return parsed
    if answer_complete(output.text, family, thinking):
        return parsed
    return ParsedAnswer(
        Status.MALFORMED_OUTPUT,
        reasoning=parsed.reasoning,
        answer=parsed.answer,
        message=(
            f"output hit the token limit ({output.tokens} tokens) before a complete answer: "
            "raise max_new_tokens"
        ),
    )


def _pair(visible: ParsedAnswer, amodal: ParsedAnswer | None) -> list[GroundedObject]:
    """One object per visible box; each takes the amodal box that overlaps it most (an amodal
    box contains its visible part). Amodal boxes left over (fully hidden targets) become
    objects without a visible box."""
    objects = [GroundedObject(visible=box, label=label) for box, label in visible.boxes]
    if amodal is None or amodal.status is not Status.OK:
        return objects
    free: list[tuple[Box, str]] = list(amodal.boxes)
    for obj in objects:
        seen = obj.visible
        if not free or seen is None:
            break
        best = max(range(len(free)), key=lambda k: _overlap(seen, free[k][0]))
        box, label = free.pop(best)
        obj.amodal, obj.amodal_predicted = box, True
        obj.label = obj.label or label
    objects.extend(
        GroundedObject(visible=None, amodal=box, amodal_predicted=True, label=label)
        for box, label in free
    )
    return objects


def _overlap(visible: Box, amodal: Box) -> float:
    """IoU, plus how much of the visible box lies inside the amodal one."""
    ix = max(0.0, min(visible.x2, amodal.x2) - max(visible.x1, amodal.x1))
    iy = max(0.0, min(visible.y2, amodal.y2) - max(visible.y1, amodal.y1))
    inside = ix * iy / visible.area if visible.area > 0 else 0.0
    return iou(visible, amodal) + inside


def _combined_status(
    visible: ParsedAnswer, amodal: ParsedAnswer | None, objects: list[GroundedObject]
) -> tuple[Status, str]:
    if objects:
        messages = [p.message for p in (visible, amodal) if p and p.status is not Status.OK]
        return Status.OK, "; ".join(m for m in messages if m)
    if amodal is not None and amodal.status is Status.MALFORMED_OUTPUT:
        if visible.status is Status.MALFORMED_OUTPUT:
            return Status.MALFORMED_OUTPUT, f"visible: {visible.message}; amodal: {amodal.message}"
    return visible.status, visible.message
