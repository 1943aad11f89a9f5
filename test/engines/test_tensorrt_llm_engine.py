"""The TensorRT-LLM engine without TensorRT-LLM (no NVIDIA GPU here): the missing-package error,
and, against a stand-in of the documented LLM API injected as `tensorrt_llm` in this test only,
argument mapping, prompt building, early stop with abort, cancel, timeout and result handling."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

from egm_ros.core.types import GroundingError, Status
from egm_ros.engines.base import EngineRequest, SamplingParams


def test_without_tensorrt_llm_the_error_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)
    from egm_ros.engines.tensorrt_llm_engine import TensorRTLLMEngine

    with pytest.raises(GroundingError) as info:
        TensorRTLLMEngine("JamesZGQ/EGM-8B")
    assert info.value.status is Status.ENGINE_UNAVAILABLE
    assert "NVIDIA GPU" in info.value.message


class _Completion:
    def __init__(self, text: str, token_ids: list[int], finish_reason: str | None) -> None:
        self.text, self.token_ids, self.finish_reason = text, token_ids, finish_reason


class _Result:
    """Stand-in of TensorRT-LLM's streaming GenerationResult: iterates partial outputs."""

    def __init__(self, pieces: list[str], delay: float) -> None:
        self.pieces, self.delay, self.aborted, self.consumed = pieces, delay, False, 0

    def __iter__(self):
        text = ""
        for i, piece in enumerate(self.pieces):
            if self.aborted:
                return
            time.sleep(self.delay)
            text += piece
            self.consumed = i + 1
            last = i == len(self.pieces) - 1
            yield types.SimpleNamespace(
                outputs=[_Completion(text, list(range(i + 1)), "stop" if last else None)]
            )

    def abort(self) -> None:
        self.aborted = True


def _stand_in(pieces: list[str], delay: float = 0.0) -> types.ModuleType:
    trt = types.ModuleType("tensorrt_llm")
    llmapi = types.ModuleType("tensorrt_llm.llmapi")

    class KvCacheConfig:
        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

    class SamplingParamsStandIn:
        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

    class LLM:
        instances: list = []

        def __init__(self, **kwargs) -> None:
            self.kwargs, self.calls, self.results = kwargs, [], []
            LLM.instances.append(self)

        def generate_async(self, prompt, sampling_params, streaming=False):
            self.calls.append((prompt, sampling_params, streaming))
            result = _Result(pieces, delay)
            self.results.append(result)
            return result

    trt.LLM, trt.SamplingParams, llmapi.KvCacheConfig, trt.llmapi = (
        LLM,
        SamplingParamsStandIn,
        KvCacheConfig,
        llmapi,
    )
    return trt


@pytest.fixture
def make_engine(monkeypatch, tiny_model_dir):
    def make(pieces: list[str], delay: float = 0.0, **kwargs):
        trt = _stand_in(pieces, delay)
        monkeypatch.setitem(sys.modules, "tensorrt_llm", trt)
        monkeypatch.setitem(sys.modules, "tensorrt_llm.llmapi", trt.llmapi)
        from egm_ros.engines.tensorrt_llm_engine import TensorRTLLMEngine

        return TensorRTLLMEngine(str(tiny_model_dir), **kwargs)

    return make


pytestmark = pytest.mark.ml
IMAGE = np.zeros((64, 96, 3), np.uint8)
ANSWER = ["I see ", "it.</think>", "```json\n", '[{"bbox_2d": [1, 2, 3, 4]}]', "\n```", " more"]


def test_constructor_and_sampling_mapping(make_engine) -> None:
    engine = make_engine(
        ANSWER, max_batch_size=4, kv_cache_free_gpu_memory_fraction=0.6, tensor_parallel_size=2
    )
    kwargs = engine.llm.kwargs
    assert kwargs["max_batch_size"] == 4 and kwargs["tensor_parallel_size"] == 2
    assert kwargs["kv_cache_config"].kwargs == {"free_gpu_memory_fraction": 0.6}
    mapped = engine.sampling_params(SamplingParams(max_new_tokens=9, top_k=20))
    assert mapped.kwargs == {
        "max_tokens": 9,
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 20,
        "repetition_penalty": 1.0,
    }


def test_prompt_is_image_first_with_the_chat_template(make_engine) -> None:
    engine = make_engine(ANSWER)
    prompt = engine.build_prompt(EngineRequest(image=IMAGE, prompt="find <ref>mug</ref>"))
    assert prompt["prompt"].startswith("<|im_start|>user\n<|vision_start|><|image_pad|>")
    assert prompt["prompt"].endswith(
        "find <ref>mug</ref><|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    (image,) = prompt["multi_modal_data"]["image"]
    assert image.size == (96, 64)


def test_streams_concurrently_and_aborts_when_the_answer_is_complete(make_engine) -> None:
    engine = make_engine(ANSWER, delay=0.05)
    requests = [
        EngineRequest(image=IMAGE, prompt="p", stop_check=lambda t: t.endswith("```"))
        for _ in range(2)
    ]
    t0 = time.monotonic()
    outputs = engine.generate(requests, timeout=10)
    assert time.monotonic() - t0 < 0.5  # both streams ran at once (5 x 50 ms each)
    for out, result in zip(outputs, engine.llm.results, strict=True):
        assert out.text.endswith("```") and "more" not in out.text
        assert out.tokens == 5 and out.finish_reason == "answer_complete"
        assert result.aborted and result.consumed == 5
    assert all(streaming for _, _, streaming in engine.llm.calls)


def test_full_stream_result_handling(make_engine) -> None:
    engine = make_engine(ANSWER)
    (out,) = engine.generate([EngineRequest(image=IMAGE, prompt="p")], timeout=10)
    assert out.text == "".join(ANSWER) and out.tokens == 6 and out.finish_reason == "stop"


def test_cancel_and_timeout_abort_the_stream(make_engine) -> None:
    engine = make_engine(ANSWER * 50, delay=0.02)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    with pytest.raises(GroundingError) as info:
        engine.generate([EngineRequest(image=IMAGE, prompt="p", cancel=cancel)], timeout=10)
    assert info.value.status is Status.CANCELLED and engine.llm.results[-1].aborted
    with pytest.raises(GroundingError) as info:
        engine.generate([EngineRequest(image=IMAGE, prompt="p")], timeout=0.2)
    assert info.value.status is Status.TIMEOUT
