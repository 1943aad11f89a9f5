"""The transformers engine end to end on the project's random tiny Qwen3-VL: plumbing, not
accuracy (a random model's answer is noise)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from egm_ros.core.engine import EngineRequest, SamplingParams
from egm_ros.core.families import Family
from egm_ros.core.grounder import Grounder, GrounderConfig
from egm_ros.core.types import GroundingError, Mode, Status

pytestmark = pytest.mark.ml
IMAGE = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from egm_ros.engines.transformers_engine import TransformersEngine

    eng = TransformersEngine(str(tiny_model_dir), batch_window_ms=100, num_threads=2)
    yield eng
    eng.close()


def request(tokens: int = 12, **kwargs) -> EngineRequest:
    return EngineRequest(
        image=IMAGE,
        prompt="find <ref>the mug</ref>",
        sampling=SamplingParams(max_new_tokens=tokens),
        **kwargs,
    )


def test_generates_text_and_counts_tokens(engine) -> None:
    out1, out2 = engine.generate([request(8), request(8)], timeout=60)
    assert out1.tokens == out2.tokens == 8  # greedy, no end of turn from a random model
    assert out1.text == out2.text  # same input, greedy: same output
    assert out1.finish_reason == "length" and out1.inference_ms > 0
    assert engine.model_config["model_type"] == "qwen3_vl"


def test_on_the_cpu_patch_embedding_and_rms_norm_take_their_fast_forms(engine) -> None:
    from egm_ros.models.fast_forwards import _as_linear, _fused_rms_norm

    assert engine.model.model.visual.patch_embed.forward.__func__ is _as_linear
    norms = [m for m in engine.model.modules() if type(m).__name__.endswith("RMSNorm")]
    assert norms and all(m.forward.__func__ is _fused_rms_norm for m in norms)


def run_together(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_calls_are_batched(engine) -> None:
    engine.batch_sizes.clear()
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(engine.generate([request(4)], 60)))
        for _ in range(4)
    ]
    run_together(threads)
    assert len(results) == 4
    assert max(engine.batch_sizes) >= 2  # requests from different threads shared a batch
    assert sum(engine.batch_sizes) == 4


def test_callers_coming_back_apart_are_batched_like_the_batch_before(engine) -> None:
    """Closed-loop callers (several commands in flight) return spread over more than the
    short window; after a batch of 3 the engine waits (up to its linger) for 3 again."""
    worker = engine.worker  # the shared batching thread (egm_ros.engines.batching)
    window, linger = worker.batch_window_s, worker.batch_linger_s
    worker.batch_window_s, worker.batch_linger_s = 0.001, 3.0
    try:
        engine.generate([request(4) for _ in range(3)], 60)  # a batch of 3
        engine.batch_sizes.clear()
        results: list = []
        threads = [
            threading.Timer(0.15 * i, lambda: results.append(engine.generate([request(4)], 60)))
            for i in range(3)
        ]
        run_together(threads)
        assert len(results) == 3
        assert engine.batch_sizes == [3]  # one batch, although the callers came 150 ms apart
        engine.generate([request(4)], 60)  # a lone caller: batch of 1 (after the linger) ...
        engine.generate([request(4)], 60)  # ... and the next one goes at once
        assert engine.batch_sizes == [3, 1, 1]
    finally:
        worker.batch_window_s, worker.batch_linger_s = window, linger


def test_stop_check_ends_the_sequence_early_and_progress_is_reported(engine) -> None:
    seen: list[int] = []
    stop_at = 3
    (out,) = engine.generate(
        [
            request(
                40,
                stop_check=lambda text: len(seen) >= stop_at,
                on_progress=lambda n, text: seen.append(n),
            )
        ],
        timeout=60,
    )
    assert out.finish_reason == "answer_complete"
    assert out.tokens == stop_at < 40
    assert seen[:stop_at] == [1, 2, 3]


def test_timeout_and_cancel(engine) -> None:
    with pytest.raises(GroundingError) as info:
        engine.generate([request(5000)], timeout=0.5)
    assert info.value.status is Status.TIMEOUT
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GroundingError) as info:
        engine.generate([request(5000, cancel=cancel)], timeout=30)
    assert info.value.status is Status.CANCELLED
    assert engine.generate([request(2)], timeout=60)[0].tokens == 2  # still serving


def test_grounder_over_a_random_model_never_raises(engine) -> None:
    grounder = Grounder(engine, GrounderConfig(mode=Mode.AMODAL))
    assert grounder.family is Family.QWEN3_VL  # detected from the model's config
    grounder.config.sampling = SamplingParams(max_new_tokens=16)
    out = grounder.ground(IMAGE, "the red mug")
    assert out.status in (Status.MALFORMED_OUTPUT, Status.NOT_FOUND, Status.OK)
    assert out.tokens > 0 and out.model.endswith("tiny_qwen3_vl0")


def test_missing_model_is_engine_unavailable(tmp_path) -> None:
    from egm_ros.engines.transformers_engine import TransformersEngine

    with pytest.raises(GroundingError) as info:
        TransformersEngine(str(tmp_path / "no-such-model"))
    assert info.value.status is Status.ENGINE_UNAVAILABLE


def test_max_pixels_bounds_the_processor_without_a_deprecation_warning(tiny_model_dir) -> None:
    import warnings

    from PIL import Image

    from egm_ros.engines.transformers_engine import TransformersEngine

    wide = Image.fromarray(np.zeros((224, 448, 3), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # transformers' min_pixels/max_pixels FutureWarning
        engine = TransformersEngine(str(tiny_model_dir), max_pixels=20_000)
        try:
            grid = engine.processor.image_processor(images=[wide], return_tensors="pt")
            (t, h, w) = grid["image_grid_thw"][0].tolist()
            patch = engine.processor.image_processor.patch_size
            assert h * w * patch * patch <= 20_000  # the bound took effect
            out = engine.generate([request(2)], 60)
            assert out[0].tokens == 2
        finally:
            engine.close()


@pytest.mark.parametrize(
    ("configured", "limit", "square_tokens", "wide_tokens"),
    [(1_003_520, 224 * 224, 49, 48), (None, 224 * 224, 49, 48), (20_000, 20_000, 16, 15)],
)
def test_max_pixels_lowers_the_models_own_limit_and_never_raises_it(
    tiny_model_dir, configured, limit, square_tokens, wide_tokens
) -> None:
    """The tiny model's processor allows 224 x 224 pixels (7 x 7 = 49 visual tokens): the
    node's default of 1,003,520 must not let a 640 x 480 frame in at 300 tokens."""
    from egm_ros.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(str(tiny_model_dir), max_pixels=configured, num_threads=2)
    try:
        assert engine.processor_max_pixels == limit
        frame = np.zeros((480, 640, 3), np.uint8)
        wide_request = EngineRequest(
            image=frame, prompt=request().prompt, sampling=SamplingParams(max_new_tokens=1)
        )
        square, wide = engine.generate([request(1), wide_request], timeout=60)  # one batch
        content = [{"type": "image"}, {"type": "text", "text": request().prompt}]
        text = engine.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
        # The template holds one <|image_pad|>, which the processor repeats per visual token.
        text_tokens = len(engine.processor.tokenizer(text)["input_ids"]) - 1
    finally:
        engine.close()
    assert square.prompt_tokens == text_tokens + square_tokens
    assert wide.prompt_tokens == text_tokens + wide_tokens
