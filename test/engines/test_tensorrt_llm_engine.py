"""The TensorRT-LLM engine without TensorRT-LLM (no NVIDIA GPU here): the missing-package error,
and, against the stand-in of its LLM API in test/support/trtllm_stand_in.py (which raises,
blocks and is not thread-safe where the real one is), argument mapping, greedy decoding, prompt
building, one lock around submit/abort, error statuses, max_pixels, early stop, cancel and the
deadline."""

from __future__ import annotations

import json
import math
import sys
import threading
import time

import numpy as np
import pytest
from trtllm_stand_in import Behaviour, stand_in_module

from egm_ros.core.engine import EngineRequest, SamplingParams
from egm_ros.core.types import GroundingError, Status


def test_without_tensorrt_llm_the_error_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)
    from egm_ros.engines.tensorrt_llm_engine import TensorRTLLMEngine

    with pytest.raises(GroundingError) as info:
        TensorRTLLMEngine("JamesZGQ/EGM-8B")
    assert info.value.status is Status.ENGINE_UNAVAILABLE
    assert "NVIDIA GPU" in info.value.message


pytestmark = pytest.mark.ml
IMAGE = np.zeros((64, 96, 3), np.uint8)
ANSWER = ["I see ", "it.</think>", "```json\n", '[{"bbox_2d": [1, 2, 3, 4]}]', "\n```", " more"]


@pytest.fixture
def make_engine(monkeypatch, tiny_model_dir):
    """``make(model_dir=None, **kwargs)``: the engine on the stand-in; ``Behaviour`` fields
    among the keyword arguments go to the stand-in, the rest to the engine."""
    made = []

    def make(model_dir=None, **kwargs):
        fields = Behaviour.__dataclass_fields__
        behaviour = Behaviour(**{k: kwargs.pop(k) for k in list(kwargs) if k in fields})
        trt = stand_in_module(behaviour)
        monkeypatch.setitem(sys.modules, "tensorrt_llm", trt)
        monkeypatch.setitem(sys.modules, "tensorrt_llm.llmapi", trt.llmapi)
        from egm_ros.engines.tensorrt_llm_engine import TensorRTLLMEngine

        engine = TensorRTLLMEngine(str(model_dir or tiny_model_dir), **kwargs)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()
        engine.llm.release_all()


def _request(**kwargs) -> EngineRequest:
    return EngineRequest(image=IMAGE, prompt="p", **kwargs)


def _status(engine, requests, timeout: float = 10) -> Status:
    with pytest.raises(GroundingError) as info:
        engine.generate(requests, timeout=timeout)
    return info.value.status


def _eventually(check, within: float = 3.0) -> bool:
    end = time.monotonic() + within
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_constructor_mapping(make_engine) -> None:
    engine = make_engine(
        max_batch_size=4, kv_cache_free_gpu_memory_fraction=0.6, tensor_parallel_size=2
    )
    kwargs = engine.llm.kwargs
    assert kwargs["max_batch_size"] == 4 and kwargs["tensor_parallel_size"] == 2
    assert kwargs["kv_cache_config"].kwargs == {"free_gpu_memory_fraction": 0.6}
    assert engine.model_config["model_type"] == "qwen3_vl"


def test_greedy_decodes_greedily_in_every_release(make_engine) -> None:
    """Mismatch 1: temperature 0 with top_k 20 and top_p 1.0 samples on 1.0."""
    engine = make_engine()
    greedy = engine.sampling_params(SamplingParams(max_new_tokens=9))
    assert greedy.kwargs == {"max_tokens": 9, "top_k": 1}
    assert greedy.greedy_in_1_0 and greedy.greedy_from_1_1
    penalised = engine.sampling_params(SamplingParams(max_new_tokens=9, repetition_penalty=1.05))
    assert penalised.kwargs == {"max_tokens": 9, "top_k": 1, "repetition_penalty": 1.05}
    sampled = engine.sampling_params(
        SamplingParams(max_new_tokens=9, temperature=0.7, top_p=0.9, top_k=20)
    )
    assert sampled.kwargs == {"max_tokens": 9, "temperature": 0.7, "top_p": 0.9, "top_k": 20}
    assert not sampled.greedy_in_1_0 and not sampled.greedy_from_1_1


def test_prompt_is_image_first_with_the_chat_template(make_engine) -> None:
    engine = make_engine()
    prompt = engine.build_prompt(EngineRequest(image=IMAGE, prompt="find <ref>mug</ref>"))
    assert prompt["prompt"].startswith("<|im_start|>user\n<|vision_start|><|image_pad|>")
    assert prompt["prompt"].endswith(
        "find <ref>mug</ref><|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    (image,) = prompt["multi_modal_data"]["image"]
    assert image.size == (96, 64)
    assert "mm_processor_kwargs" not in prompt  # no max_pixels set: the checkpoint's own


def test_submits_and_aborts_from_many_threads_never_overlap(make_engine) -> None:
    """Mismatch 2: the request socket under generate_async and abort is not thread-safe."""
    engine = make_engine(pieces=ANSWER, delay=0.005, socket_hold_s=0.03)
    outcomes: list = []

    def caller() -> None:
        requests = [_request(stop_check=lambda t: t.endswith("```")) for _ in range(3)]
        try:
            outcomes.append(engine.generate(requests, timeout=30))
        except GroundingError as err:
            outcomes.append(err)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert engine.llm.socket.violations == 0
    assert len(outcomes) == 3 and all(isinstance(o, list) for o in outcomes), outcomes
    assert all(result.aborted for result in engine.llm.results)  # 9 submits, 9 aborts
    assert len(engine.llm.socket.sent) == 18


def test_every_tensorrt_llm_error_becomes_a_status(make_engine) -> None:
    """Mismatch 3: generate_async raises before it returns a result."""
    engine = make_engine(pieces=ANSWER, max_num_tokens=20)
    with pytest.raises(GroundingError) as info:
        engine.generate([_request()], timeout=10)  # prompt + image tokens > max_num_tokens
    assert info.value.status is Status.ENGINE_ERROR and "max_num_tokens" in info.value.message

    engine = make_engine(pieces=ANSWER)
    engine.llm.shutdown()  # e.g. a second owner, or TensorRT-LLM's own atexit hook
    with pytest.raises(GroundingError) as info:
        engine.generate([_request()], timeout=10)
    assert info.value.status is Status.ENGINE_UNAVAILABLE and "shutting down" in info.value.message

    engine = make_engine(pieces=ANSWER)
    engine.close()
    assert _status(engine, [_request()]) is Status.ENGINE_UNAVAILABLE
    assert not engine.health()


# TensorRT-LLM hands max_pixels to the Hugging Face processor as a call argument, and so does
# its stand-in here; transformers warns that this form is deprecated. The warning is about
# TensorRT-LLM's call, not this engine's, so it stays out of the test output.
@pytest.mark.filterwarnings("ignore:Passing `min_pixels` and `max_pixels`:FutureWarning")
def test_max_pixels_reaches_the_processor_tensorrt_llm_builds(make_engine) -> None:
    """Mismatch 4: TensorRT-LLM tokenizes with its own processor; only the request's
    mm_processor_kwargs reach it."""
    image = np.zeros((480, 640, 3), np.uint8)
    plain = make_engine(pieces=ANSWER)
    plain.generate([EngineRequest(image=image, prompt="p")], timeout=10)
    small = make_engine(pieces=ANSWER, max_pixels=128 * 128)
    small.generate([EngineRequest(image=image, prompt="p")], timeout=10)
    (prompt, _, _) = small.llm.calls[-1]
    assert prompt["mm_processor_kwargs"] == {"max_pixels": 128 * 128}
    assert small.llm.prompt_tokens[-1] < plain.llm.prompt_tokens[-1]
    assert (plain.processor_max_pixels, small.processor_max_pixels) == (224 * 224, 128 * 128)


def test_max_pixels_never_raises_the_checkpoints_own_limit(make_engine) -> None:
    """The tiny model's processor allows 224 x 224 pixels: the node's default 1,003,520 is
    not sent, so TensorRT-LLM's processor keeps the checkpoint's limit."""
    image = np.zeros((480, 640, 3), np.uint8)
    plain = make_engine(pieces=ANSWER)
    plain.generate([EngineRequest(image=image, prompt="p")], timeout=10)
    large = make_engine(pieces=ANSWER, max_pixels=1_003_520)
    large.generate([EngineRequest(image=image, prompt="p")], timeout=10)
    (prompt, _, _) = large.llm.calls[-1]
    assert "mm_processor_kwargs" not in prompt
    assert large.llm.prompt_tokens[-1] == plain.llm.prompt_tokens[-1]
    assert large.processor_max_pixels == 224 * 224


def test_the_deadline_aborts_a_request_stuck_in_prefill(make_engine) -> None:
    """Mismatch 5: no token arrives, so the result iterator blocks; the per-request timer
    aborts at the deadline and the caller gets timeout then, not later."""
    engine = make_engine(pieces=ANSWER, prefill_s=math.inf)
    start = time.monotonic()
    assert _status(engine, [_request()], timeout=0.3) is Status.TIMEOUT
    assert time.monotonic() - start < 0.3 + 0.6
    assert _eventually(lambda: engine.llm.results[-1].aborted)


def test_the_caller_gets_timeout_even_when_the_abort_is_never_answered(make_engine) -> None:
    engine = make_engine(pieces=ANSWER, prefill_s=math.inf, abort_ignored=True)
    start = time.monotonic()
    assert _status(engine, [_request()], timeout=0.3) is Status.TIMEOUT
    assert time.monotonic() - start < 0.3 + 0.6
    assert _eventually(lambda: engine.llm.results[-1].aborted)


def test_cancel_aborts_a_request_stuck_in_prefill(make_engine) -> None:
    engine = make_engine(pieces=ANSWER, prefill_s=math.inf)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    assert _status(engine, [_request(cancel=cancel)], timeout=10) is Status.CANCELLED
    assert _eventually(lambda: engine.llm.results[-1].aborted)


def test_streams_concurrently_and_aborts_when_the_answer_is_complete(make_engine) -> None:
    engine = make_engine(pieces=ANSWER, delay=0.05)
    requests = [_request(stop_check=lambda t: t.endswith("```")) for _ in range(2)]
    outputs = engine.generate(requests, timeout=10)
    for out, result in zip(outputs, engine.llm.results, strict=True):
        assert out.text.endswith("```") and "more" not in out.text
        assert out.tokens == 5 and out.finish_reason == "answer_complete"
        assert result.aborted and result.consumed == 5
    assert all(streaming for _, _, streaming in engine.llm.calls)


def test_full_stream_result_handling(make_engine) -> None:
    engine = make_engine(pieces=ANSWER)
    progress: list[int] = []
    (out,) = engine.generate([_request(on_progress=lambda n, _: progress.append(n))], timeout=10)
    assert out.text == "".join(ANSWER) and out.tokens == 6 and out.finish_reason == "stop"
    assert progress == [1, 2, 3, 4, 5, 6]
    assert not engine.llm.results[-1].aborted


def test_cancel_and_timeout_abort_a_stream_that_is_producing(make_engine) -> None:
    engine = make_engine(pieces=ANSWER * 50, delay=0.02)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    assert _status(engine, [_request(cancel=cancel)]) is Status.CANCELLED
    assert _eventually(lambda: engine.llm.results[-1].aborted)
    assert _status(engine, [_request()], timeout=0.2) is Status.TIMEOUT
    assert _eventually(lambda: engine.llm.results[-1].aborted)


def test_model_types_the_pytorch_backend_cannot_run_fail_early(make_engine, tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "internvl_chat"}))
    with pytest.raises(GroundingError) as info:
        make_engine(model_dir=tmp_path)
    assert info.value.status is Status.ENGINE_UNAVAILABLE
    assert "InternVL" in info.value.message and "PyTorch backend" in info.value.message

    with pytest.raises(GroundingError) as info:
        make_engine(version="1.1.0")  # the tiny model is a qwen3_vl
    assert info.value.status is Status.ENGINE_UNAVAILABLE and "1.2" in info.value.message
    assert make_engine(version="1.2.0").model_config["model_type"] == "qwen3_vl"
