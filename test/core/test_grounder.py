"""The grounder's own logic, with a scripted test engine (a stand-in for a model, named as
such): which queries go to the engine and how, pairing of visible and amodal answers, the
status rules, the resize policy, and that nothing raises."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest
from scripted_engine import ScriptedEngine, answer

from egm_ros.core.compressed import decode_compressed
from egm_ros.core.engine import EncodedImage, Engine, EngineOutput, EngineRequest
from egm_ros.core.families import Family
from egm_ros.core.grounder import Grounder, GrounderConfig
from egm_ros.core.images import encode_jpeg
from egm_ros.core.prompts import PromptStyle
from egm_ros.core.types import GroundingError, Mode, Status

RGB = np.zeros((500, 1000, 3), np.uint8)


def grounder(engine: Engine, **config) -> Grounder:
    return Grounder(engine, GrounderConfig(family=Family.QWEN3_VL, **config))


def test_visible_mode_sends_one_query_with_the_egm_prompt_and_early_stop() -> None:
    engine = ScriptedEngine(visible=answer([100, 100, 500, 500]))
    out = grounder(engine).ground(RGB, "the red mug")
    assert out.status is Status.OK
    (call,) = engine.calls
    (request,) = call
    assert request.prompt == "Locate the red mug, output its bbox coordinates using JSON format"
    assert request.stop_check is not None and request.stop_check(answer([1, 2, 3, 4]))
    assert not request.stop_check("I see it. The mug")
    assert out.objects[0].visible.as_list() == [100.0, 50.0, 500.0, 250.0]
    assert out.objects[0].amodal is None and not out.objects[0].amodal_predicted
    assert out.reasoning == "I see it."


@pytest.mark.parametrize("style", ["egm", "base"])
def test_reasoning_handling_follows_thinking_not_the_prompt_style(style: str) -> None:
    """A box written in the reasoning must not stop generation while the model thinks, with
    the base wording as with the EGM one; without thinking the answer comes at once."""
    in_reasoning = 'The mug, maybe {"bbox_2d": [1, 2, 3, 4]}, no, the other one'
    for thinking, stops in ((True, False), (False, True)):
        engine = ScriptedEngine(visible=answer([1, 2, 3, 4]))
        config = GrounderConfig(family=Family.QWEN3_VL, prompt_style=style, thinking=thinking)
        Grounder(engine, config).ground(RGB, "the red mug")
        (request,) = engine.calls[0]
        assert request.stop_check(in_reasoning) is stops
        assert request.stop_check(answer([1, 2, 3, 4]))
        assert request.chat_template_kwargs == (None if thinking else {"enable_thinking": False})


def test_a_base_model_that_ends_its_turn_without_thinking_is_answered() -> None:
    """Base style: a thinking base model's reasoning is split off, and a non-thinking one
    (no think tag, turn ended) is taken at its word; an EGM checkpoint that ends its turn
    without </think> was cut short."""
    for text in (answer([100, 100, 500, 500]), answer([100, 100, 500, 500]).split("</think>")[1]):
        out = grounder(ScriptedEngine(visible=text), prompt_style="base").ground(RGB, "the mug")
        assert out.status is Status.OK, out.message
        assert out.objects[0].visible.as_list() == [100.0, 50.0, 500.0, 250.0]
    bare = answer([100, 100, 500, 500]).split("</think>")[1]
    out = grounder(ScriptedEngine(visible=bare)).ground(RGB, "the mug")
    assert out.status is Status.MALFORMED_OUTPUT and "</think>" in out.message


class DeclaringEngine(ScriptedEngine):
    """A scripted engine whose model config declares its own prompt wording."""

    def __init__(self, declared: object, **answers: str) -> None:
        super().__init__(**answers)
        self.declared = declared

    @property
    def model_config(self) -> dict | None:
        return {"model_type": "qwen3_vl", "egm_prompts": self.declared}


def test_a_model_that_declares_its_wording_is_asked_in_it() -> None:
    declared = {"visible": "find <ref>{sent}</ref>", "amodal": "find all of <ref>{sent}</ref>"}
    engine = DeclaringEngine(declared, visible=answer([1, 2, 3, 4]), amodal=answer([1, 2, 5, 6]))
    out = Grounder(engine).ground(RGB, "the red mug", Mode.AMODAL)
    assert out.status is Status.OK
    assert [r.prompt for r in engine.calls[0]] == [
        "find <ref>the red mug</ref>",
        "find all of <ref>the red mug</ref>",
    ]
    base = Grounder(engine, GrounderConfig(prompt_style="base")).ground(RGB, "the red mug")
    assert base.status is Status.OK and engine.calls[1][0].prompt.startswith("Locate the red mug")


def test_a_malformed_declaration_is_an_engine_error_naming_it() -> None:
    engine = DeclaringEngine({"visible": "no placeholder"}, visible=answer([1, 2, 3, 4]))
    out = Grounder(engine).ground(RGB, "the red mug")
    assert out.status is Status.ENGINE_ERROR and "egm_prompts" in out.message
    assert not engine.calls


def test_amodal_mode_sends_both_queries_in_one_call_and_pairs_them() -> None:
    engine = ScriptedEngine(
        visible=answer([600, 100, 800, 300], [100, 100, 300, 300]),
        amodal=answer([100, 100, 300, 700], [600, 100, 800, 500]),
    )
    out = grounder(engine, mode=Mode.AMODAL).ground(RGB, "the mugs")
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 2
    assert "amodal" in engine.calls[0][1].prompt
    assert out.status is Status.OK
    first, second = out.objects
    assert first.visible.as_list() == [600.0, 50.0, 800.0, 150.0]
    assert first.amodal.as_list() == [600.0, 50.0, 800.0, 250.0]
    assert second.amodal.as_list() == [100.0, 50.0, 300.0, 350.0]
    assert first.amodal_predicted and second.amodal_predicted
    assert out.tokens == sum(len(a.split()) for a in engine.answers.values())


def test_amodal_box_may_extend_past_the_border_visible_is_clipped() -> None:
    engine = ScriptedEngine(visible=answer([900, 0, 1100, 200]), amodal=answer([900, 0, 1100, 200]))
    out = grounder(engine).ground(RGB, "the cut-off mug", Mode.AMODAL)
    (obj,) = out.objects
    assert obj.visible.x2 == 1000.0
    assert obj.amodal.x2 == pytest.approx(1100.0)


def test_fully_hidden_target_has_an_amodal_box_only() -> None:
    engine = ScriptedEngine(visible="Hidden.</think>```json\n[]\n```", amodal=answer([1, 1, 9, 9]))
    out = grounder(engine).ground(RGB, "the hidden ball", "amodal")
    assert out.status is Status.OK
    (obj,) = out.objects
    assert obj.visible is None and obj.amodal_predicted


@pytest.mark.parametrize(
    ("visible", "status"),
    [
        ("There is no mug.</think>```json\n[]\n```", Status.NOT_FOUND),
        ('Thinking</think>```json\n[{"bbox_2d": [1, 2', Status.MALFORMED_OUTPUT),
        ("thinking without end and no answer", Status.MALFORMED_OUTPUT),
    ],
)
def test_answers_without_a_box_get_a_clean_status(visible: str, status: Status) -> None:
    think = "<think>" if "without end" in visible else ""
    out = grounder(ScriptedEngine(visible=think + visible)).ground(RGB, "the mug")
    assert out.status is status
    assert out.objects == []


@pytest.mark.parametrize(
    "error",
    [
        GroundingError(Status.ENGINE_UNAVAILABLE, "connection refused"),
        GroundingError(Status.TIMEOUT, "no answer in 1 s"),
        GroundingError(Status.CANCELLED, "cancelled"),
    ],
)
def test_engine_errors_become_outcomes(error: GroundingError) -> None:
    out = grounder(ScriptedEngine(error=error)).ground(RGB, "the mug")
    assert out.status is error.status and out.message == error.message
    assert out.latency.total_ms >= 0


def test_unexpected_engine_exception_is_an_engine_error_not_a_raise() -> None:
    engine = ScriptedEngine()
    engine.generate = lambda requests, timeout: 1 / 0  # type: ignore[method-assign]
    out = grounder(engine).ground(RGB, "the mug")
    assert out.status is Status.ENGINE_ERROR and "ZeroDivisionError" in out.message


@pytest.mark.parametrize(
    ("image", "prompt"),
    [
        (RGB, ""),
        (RGB, "x" * 5000),
        (np.zeros((10, 10), np.uint8), "the mug"),
        (np.zeros((10, 10, 3), np.float32), "the mug"),
        ("not an image", "the mug"),
    ],
    ids=["empty", "too-long", "grey", "float", "str"],
)
def test_invalid_input_never_reaches_the_engine(image, prompt: str) -> None:
    engine = ScriptedEngine(visible=answer([1, 1, 9, 9]))
    out = grounder(engine).ground(image, prompt)
    assert out.status is Status.INVALID_INPUT
    assert engine.calls == []


def test_large_frames_are_downscaled_before_the_engine_boxes_stay_in_source_pixels() -> None:
    engine = ScriptedEngine(visible=answer([500, 500, 1000, 1000]))
    big = np.zeros((2160, 3840, 3), np.uint8)
    out = grounder(engine, max_pixels=1280 * 28 * 28).ground(big, "the mug")
    sent = engine.calls[0][0].image
    assert sent.shape[0] * sent.shape[1] <= 1280 * 28 * 28
    assert out.objects[0].visible.as_list() == [1920.0, 1080.0, 3840.0, 2160.0]


def test_the_images_own_bytes_go_with_it_unless_it_was_resized() -> None:
    encoded = EncodedImage(b"\xff\xd8\xff the file as stored", "image/jpeg")
    engine = ScriptedEngine(visible=answer([1, 1, 9, 9]), amodal=answer([1, 1, 9, 9]))
    grounder(engine).ground(RGB, "the mug", Mode.AMODAL, encoded=encoded)
    assert [r.encoded for r in engine.calls[0]] == [encoded, encoded]
    assert all(r.image is RGB for r in engine.calls[0])
    grounder(engine, max_pixels=100 * 100).ground(RGB, "the mug", encoded=encoded)
    (resized,) = engine.calls[1]
    assert resized.encoded is None and resized.image.shape[0] * resized.image.shape[1] <= 10**4
    grounder(engine).ground(RGB, "the mug")
    assert engine.calls[2][0].encoded is None


class LocatingEngine(ScriptedEngine):
    """Test double that "sees": answers the bright rectangle of the image it was sent, in
    Qwen3-VL's 0..1000 coordinates, so a box that comes back right proves the whole mapping."""

    def generate(self, requests: Sequence[EngineRequest], timeout: float) -> list[EngineOutput]:
        image = requests[0].image
        ys, xs = np.nonzero(image[:, :, 0] > 145)
        h, w = image.shape[:2]
        box = [
            round(1000 * xs.min() / w),
            round(1000 * ys.min() / h),
            round(1000 * (xs.max() + 1) / w),
            round(1000 * (ys.max() + 1) / h),
        ]
        self.answers[Mode.VISIBLE] = answer(box)
        return super().generate(requests, timeout)


def rectangle_frame(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    """A camera JPEG: a bright rectangle at ``box`` (source pixels) on a dark background."""
    rgb = np.full((height, width, 3), 40, np.uint8)
    x1, y1, x2, y2 = box
    rgb[y1:y2, x1:x2] = (250, 200, 30)
    return encode_jpeg(rgb, 95)


def test_a_reduced_jpeg_decode_reports_boxes_in_the_source_frames_pixels() -> None:
    frame = decode_compressed("jpeg", rectangle_frame(1600, 1200, (400, 300, 800, 900)), 400_000)
    assert frame.rgb.shape == (600, 800, 3) and frame.source_size == (1600, 1200)
    engine = ScriptedEngine(visible=answer([250, 250, 500, 750]))
    g = grounder(engine, max_pixels=400_000)
    out = g.ground(frame.rgb, "the box", source_size=frame.source_size)
    sent = engine.calls[0][0].image
    assert sent.shape[0] * sent.shape[1] <= 400_000
    assert out.status is Status.OK
    assert out.objects[0].visible.as_list() == [400.0, 300.0, 800.0, 900.0]


def test_a_reduced_decode_finds_the_rectangle_where_it_is_in_the_source() -> None:
    box = (410, 290, 1010, 870)
    frame = decode_compressed("jpeg", rectangle_frame(1920, 1440, box), 500_000)
    assert frame.rgb.shape == (720, 960, 3)
    out = grounder(LocatingEngine(), max_pixels=500_000).ground(
        frame.rgb, "the box", source_size=frame.source_size
    )
    found = out.objects[0].visible.as_list()
    assert np.abs(np.array(found) - np.array(box)).max() <= 4, found


def test_a_reduced_decode_never_sends_the_frames_own_bytes() -> None:
    data = rectangle_frame(1600, 1200, (400, 300, 800, 900))
    frame = decode_compressed("jpeg", data, 800 * 600)  # 1/2 leaves exactly max_pixels
    engine = ScriptedEngine(visible=answer([250, 250, 500, 750]))
    out = grounder(engine, max_pixels=800 * 600).ground(
        frame.rgb, "the box", encoded=EncodedImage(data, "image/jpeg"), source_size=(1600, 1200)
    )
    (request,) = engine.calls[0]
    assert request.image is frame.rgb  # no resize after the reduced decode...
    assert request.encoded is None  # ...but the file's bytes are the full frame, not these
    assert out.objects[0].visible.as_list() == [400.0, 300.0, 800.0, 900.0]


def test_a_source_size_smaller_than_the_image_is_invalid_input() -> None:
    engine = ScriptedEngine(visible=answer([1, 1, 9, 9]))
    out = grounder(engine).ground(RGB, "the mug", source_size=(500, 250))
    assert out.status is Status.INVALID_INPUT and "source size 500x250" in out.message
    assert engine.calls == []


class LimitedEngine(ScriptedEngine):
    """A scripted engine whose model's processor takes at most ``limit`` pixels."""

    def __init__(self, limit: int | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    @property
    def processor_max_pixels(self) -> int | None:
        return self.limit


@pytest.mark.parametrize(
    ("model", "configured", "limit"),
    [
        (224 * 224, 1_003_520, 224 * 224),  # the node's default never raises the model's
        (224 * 224, 20_000, 20_000),  # a smaller configured limit lowers it
        (224 * 224, 0, 224 * 224),
        (None, 1_003_520, 1_003_520),  # a remote server: the configured limit
        (None, 0, 0),  # no limit at all
    ],
)
def test_the_grounders_pixel_limit_is_the_smaller_of_the_models_and_the_configured(
    model, configured, limit
) -> None:
    assert grounder(LimitedEngine(model), max_pixels=configured).max_pixels == limit


def test_qwen2_5_boxes_map_back_through_the_models_own_limit() -> None:
    """Qwen2.5-VL answers in the pixels of its processor's resize: with a 224 x 224 limit a
    640 x 480 frame is 252 x 168 there (not 644 x 476, the resize under 1,003,520)."""
    engine = LimitedEngine(224 * 224, visible=answer([126, 84, 252, 168]))
    g = Grounder(engine, GrounderConfig(family=Family.QWEN2_5_VL, max_pixels=1_003_520))
    out = g.ground(np.zeros((480, 640, 3), np.uint8), "the mug")
    assert out.objects[0].visible.as_list() == [320.0, 240.0, 640.0, 480.0]


def test_progress_and_cancel_reach_the_engine_and_latency_is_broken_down() -> None:
    engine = ScriptedEngine(visible=answer([1, 1, 9, 9]))
    progress: list[tuple[int, str]] = []
    cancel = threading.Event()
    out = grounder(engine).ground(
        RGB,
        "the mug",
        on_progress=lambda n, t: progress.append((n, t)),
        cancel=cancel,
        received_at=0.0,
        started_at=None,
    )
    assert progress == [(3, "I see")]
    assert engine.calls[0][0].cancel is cancel
    lat = out.latency
    assert lat.waiting_ms > 0 and lat.inference_ms > 0
    assert lat.total_ms >= lat.waiting_ms + lat.preprocessing_ms + lat.inference_ms - 1e-6


def test_the_engine_gets_the_configured_timeout_or_the_callers_budget() -> None:
    engine = ScriptedEngine(visible=answer([100, 100, 500, 500]))
    g = grounder(engine, timeout=30.0)
    g.ground(RGB, "the mug")
    g.ground(RGB, "the mug", timeout=2.5)  # e.g. what queueing left of a node request's budget
    assert engine.timeouts == [30.0, 2.5]


# Regression (issue 16, defect 1): reasoning cut off before ``</think>`` that mentions
# coordinates was answered ok with a box taken from the reasoning.
TRUNCATED_REASONING = (
    "The red box is on the left, about [156, 312, 406, 688], and the blue one covers its"
)


@pytest.mark.parametrize("finish_reason", ["length", "stop"])
def test_reasoning_cut_off_before_think_close_is_malformed_not_ok(finish_reason: str) -> None:
    engine = ScriptedEngine(visible=TRUNCATED_REASONING, finish_reason=finish_reason)
    out = grounder(engine).ground(RGB, "the red box")  # egm prompts: the template opens <think>
    assert out.status is Status.MALFORMED_OUTPUT, out.message
    assert out.objects == []
    assert "max_new_tokens" in out.message


def test_a_length_finish_before_a_complete_answer_is_never_ok() -> None:
    # No think block (a base model), and the box so far parses, but the token limit cut it.
    engine = ScriptedEngine(visible=TRUNCATED_REASONING, finish_reason="length")
    out = grounder(engine, prompt_style=PromptStyle.BASE).ground(RGB, "the red box")
    assert out.status is Status.MALFORMED_OUTPUT, out.message
    assert out.objects == [] and "token limit" in out.message


def test_a_length_finish_cannot_claim_not_found_either() -> None:
    engine = ScriptedEngine(
        visible="I looked.</think>There is no red box but a", finish_reason="length"
    )
    out = grounder(engine).ground(RGB, "the red box")
    assert out.status is Status.MALFORMED_OUTPUT


def test_a_complete_answer_that_used_every_token_is_still_ok() -> None:
    engine = ScriptedEngine(visible=answer([100, 100, 500, 500]), finish_reason="length")
    out = grounder(engine).ground(RGB, "the mug")
    assert out.status is Status.OK
    assert out.objects[0].visible.as_list() == [100.0, 50.0, 500.0, 250.0]


def test_without_a_think_block_in_the_template_a_plain_answer_is_parsed() -> None:
    # prompt_style base: no <think> opened, so an answer without </think> is the answer.
    engine = ScriptedEngine(visible='```json\n[{"bbox_2d": [100, 100, 500, 500]}]\n```')
    out = grounder(engine, prompt_style=PromptStyle.BASE).ground(RGB, "the mug")
    assert out.status is Status.OK
