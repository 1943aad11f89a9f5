"""An engine in a worker process of its own (egm_ros.engines.process_engine): the same answers,
progress, early stop, cancel, timeouts and error statuses as the engine inside it, and clean
failures when the worker cannot start or dies. The OpenAI-compatible engine runs inside for
the protocol (the scripted server is in this process, the worker reaches it over loopback); the
transformers engine for the factory's choice and the model's own process."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import replace

import numpy as np
import pytest
from openai_server import DEFAULT_ANSWER, ScriptedOpenAIServer, split_tokens

from egm_ros.core.engine import EngineRequest
from egm_ros.core.families import Family
from egm_ros.core.parsing import AnswerComplete
from egm_ros.core.types import GroundingError, Status
from egm_ros.engines import EngineSettings, create_engine
from egm_ros.engines.process_engine import ProcessEngine

IMAGE = np.zeros((32, 48, 3), np.uint8)
TAIL = " and more" * 150
LONG = DEFAULT_ANSWER + TAIL  # a complete answer, then text an early stop never reads


@pytest.fixture(scope="module")
def server():
    with ScriptedOpenAIServer(model="egm-test") as srv:
        yield srv


@pytest.fixture(autouse=True)
def reset(server):
    server.reply = lambda request: DEFAULT_ANSWER
    server.chunk_delay, server.hang, server.fail_status = 0.0, False, None
    yield


@pytest.fixture(scope="module")
def engine(server):
    eng = create_engine(
        EngineSettings(backend="openai", base_url=server.base_url, own_process=True)
    )
    yield eng
    eng.close()


def request(**kwargs) -> EngineRequest:
    return EngineRequest(image=IMAGE, prompt="find <ref>the mug</ref>", **kwargs)


def test_answers_progress_and_early_stop_come_back_from_the_worker(engine, server) -> None:
    assert isinstance(engine, ProcessEngine) and engine.pid != os.getpid()
    assert engine.backend == "openai" and engine.takes_encoded  # as the engine inside says
    server.reply = lambda request: LONG
    seen: list[tuple[int, str]] = []
    check = AnswerComplete(Family.QWEN3_VL)
    (out,) = engine.generate(
        [request(stop_check=check, on_progress=lambda n, t: seen.append((n, t)))], 10
    )
    assert out.finish_reason == "answer_complete" and check(out.text)
    assert DEFAULT_ANSWER.startswith(out.text)  # not a token of the tail
    assert engine.model_name == "egm-test"  # the server's, known from the first answer
    counts = [n for n, _ in seen]
    assert counts == sorted(counts) and counts[-1] == out.tokens
    assert seen[-1][1] == out.text


def test_a_stop_check_other_than_the_grounders_is_evaluated_here(engine, server) -> None:
    server.reply = lambda request: LONG
    server.chunk_delay = 0.005  # the tail would take about 1.5 s to stream
    asked: list[str] = []

    def closure(text: str) -> bool:  # any callable but the grounder's AnswerComplete
        asked.append(text)
        return "```json" in text and text.rstrip().endswith("```")

    (out,) = engine.generate([request(stop_check=closure)], 10)
    assert asked  # evaluated in this process, on the worker's progress reports
    assert out.finish_reason == "answer_complete"
    # Stopped within a few tokens of the answer (the stop crosses the pipe), long before the
    # tail's end.
    assert out.text.startswith(DEFAULT_ANSWER) and out.tokens < len(split_tokens(LONG)) // 2
    assert asked[-1].startswith(DEFAULT_ANSWER)


def test_cancel_is_passed_to_the_worker(engine, server) -> None:
    server.reply = lambda request: LONG
    server.chunk_delay = 0.1
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(GroundingError) as err:
        engine.generate([request(cancel=cancel)], 30)
    assert err.value.status is Status.CANCELLED
    assert time.monotonic() - start < 10  # not the 30 s deadline, nor the whole answer


def test_a_timeout_and_an_engine_error_keep_their_status(engine, server) -> None:
    server.hang = True
    with pytest.raises(GroundingError) as err:
        engine.generate([request()], 1.0)
    assert err.value.status is Status.TIMEOUT
    server.hang, server.fail_status = False, 500
    with pytest.raises(GroundingError) as err:
        engine.generate([request()], 10)
    assert err.value.status is Status.ENGINE_ERROR and "500" in err.value.message
    server.fail_status = None
    assert engine.generate([request()], 10)[0].text == DEFAULT_ANSWER  # and serves on


def test_a_failed_call_leaves_no_reference_cycle_holding_its_request(engine, server) -> None:
    """The image of a failed request is freed when its caller is done, without waiting for
    Python's cyclic garbage collector (see GroundingError.detached)."""
    server.fail_status = 500
    gc.collect()
    gc.disable()
    try:
        req = request()
        ref = weakref.ref(req)
        try:
            engine.generate([req], 10)
        except GroundingError as err:  # not pytest.raises: its record holds the traceback
            status = err.status
        del req
        assert status is Status.ENGINE_ERROR and ref() is None
    finally:
        gc.enable()


def test_concurrent_calls_each_get_their_own_answer(engine, server) -> None:
    server.reply = lambda request: request["messages"][0]["content"][1]["text"]
    server.chunk_delay = 0.01
    answers: dict[int, str] = {}

    def call(i: int) -> None:
        (out,) = engine.generate([EngineRequest(image=IMAGE, prompt=f"prompt {i}")], 10)
        answers[i] = out.text

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: f"prompt {i}" for i in range(4)}
    assert server.max_in_flight >= 2  # they ran at the same time in the worker


def test_a_worker_that_dies_fails_the_call_in_flight_and_every_later_one(server) -> None:
    server.hang = True
    engine = create_engine(
        EngineSettings(backend="openai", base_url=server.base_url, own_process=True)
    )
    try:
        threading.Timer(0.5, os.kill, (engine.pid, signal.SIGKILL)).start()
        with pytest.raises(GroundingError) as err:
            engine.generate([request()], 30)
        assert err.value.status is Status.ENGINE_UNAVAILABLE
        assert "exit code -9" in err.value.message
        assert not engine.health()
        with pytest.raises(GroundingError) as err:
            engine.generate([request()], 30)
        assert err.value.status is Status.ENGINE_UNAVAILABLE
    finally:
        engine.close()


def test_close_answers_the_call_in_flight_then_stops_the_worker(server) -> None:
    server.chunk_delay = 0.02
    engine = create_engine(
        EngineSettings(backend="openai", base_url=server.base_url, own_process=True)
    )
    outputs: list = []
    caller = threading.Thread(target=lambda: outputs.extend(engine.generate([request()], 30)))
    caller.start()
    time.sleep(0.3)
    engine.close()
    caller.join(30)
    assert outputs and outputs[0].text == DEFAULT_ANSWER
    assert not engine._proc.is_alive() and not engine.health()
    with pytest.raises(GroundingError) as err:
        engine.generate([request()], 5)
    assert err.value.status is Status.ENGINE_UNAVAILABLE and "closed" in err.value.message
    engine.close()  # idempotent


def test_a_server_that_resizes_is_reported_through_the_worker(server) -> None:
    settings = EngineSettings(
        backend="openai", base_url=server.base_url, own_process=True, server_max_pixels=50_176
    )
    engine = create_engine(settings)
    try:
        assert isinstance(engine, ProcessEngine)
        assert engine.resizes_encoded and engine.processor_max_pixels == 50_176
    finally:
        engine.close()


def test_server_max_pixels_is_refused_for_an_engine_without_a_server() -> None:
    for backend in ("embedded", "transformers"):
        with pytest.raises(GroundingError) as err:
            create_engine(EngineSettings(backend=backend, model="m", server_max_pixels=50_176))
        assert err.value.status is Status.INVALID_INPUT and "openai" in err.value.message


@pytest.mark.ml
def test_a_model_that_cannot_load_is_the_same_error_as_in_process(tmp_path) -> None:
    pytest.importorskip("torch")
    settings = EngineSettings(backend="transformers", model=str(tmp_path / "no-such-model"))
    errors = []
    for own_process in (True, False):
        with pytest.raises(GroundingError) as err:
            create_engine(replace(settings, own_process=own_process))
        errors.append((err.value.status, err.value.message))
    assert errors[0] == errors[1] and errors[0][0] is Status.ENGINE_UNAVAILABLE
    assert "no-such-model" in errors[0][1]


@pytest.mark.ml
def test_the_factory_runs_the_transformers_engines_in_their_own_process(tiny_model_dir) -> None:
    pytest.importorskip("torch")
    from egm_ros.engines.openai_engine import OpenAIEngine
    from egm_ros.engines.transformers_engine import TransformersEngine

    settings = EngineSettings(backend="transformers", model=str(tiny_model_dir))
    with create_engine(settings) as engine:
        assert isinstance(engine, ProcessEngine) and engine.backend == "transformers"
        assert not engine.takes_encoded  # it reads pixels
        assert engine.model_config["model_type"] == "qwen3_vl"
        assert engine.processor_max_pixels is not None
        (out,) = engine.generate([request()], 120)
        assert out.tokens > 0 and out.prompt_tokens > 0
    in_process = EngineSettings(
        backend="transformers", model=str(tiny_model_dir), own_process=False
    )
    with create_engine(in_process) as engine:
        assert isinstance(engine, TransformersEngine)
    assert isinstance(create_engine(EngineSettings(backend="openai")), OpenAIEngine)


CALLER = """
import json, os, sys
from egm_ros.core.grounder import Grounder
from egm_ros.data.eval_records import synthetic_records
from egm_ros.engines import EngineSettings, create_engine

if __name__ == "__main__":
    (record,) = synthetic_records(0, 1, False, (640, 480))
    with create_engine(EngineSettings(backend="embedded", max_pixels=1_003_520)) as engine:
        outcome = Grounder(engine).ground(record.rgb, record.sent)
        print(json.dumps({
            "status": outcome.status.value,
            "tokens": outcome.tokens,
            "worker": engine.pid,
            "worker_nice": os.getpriority(os.PRIO_PROCESS, engine.pid),
            "caller_nice": os.getpriority(os.PRIO_PROCESS, 0),
            "torch_here": "torch" in sys.modules,
            "transformers_here": "transformers" in sys.modules,
        }))
"""


@pytest.mark.ml
@pytest.mark.slow
def test_the_embedded_model_runs_outside_the_callers_interpreter(tmp_path) -> None:
    """What keeps a ROS executor fed: the caller of the default engine never imports torch or
    transformers, so no generation loop can hold its interpreter lock."""
    pytest.importorskip("torch")
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] in ("ok", "not_found") and 0 < result["tokens"] < 1024
    assert result["worker"] and not result["torch_here"] and not result["transformers_here"]
    # The worker yields a shared CPU to its caller's callbacks (EngineSettings.worker_nice).
    assert result["worker_nice"] == min(result["caller_nice"] + 10, 19)


def test_the_factory_gives_the_transformers_engines_their_cpu_threads(monkeypatch) -> None:
    import egm_ros.engines.transformers_engine as transformers_engine

    made: list[dict] = []

    class Recorder:
        def __init__(self, model: str, **kwargs) -> None:
            made.append({"model": model, **kwargs})

    import egm_ros.engines.model_source as model_source

    monkeypatch.setattr(transformers_engine, "TransformersEngine", Recorder)
    monkeypatch.setattr(model_source, "locate_model", lambda model: model)
    create_engine(EngineSettings(backend="transformers", model="m", own_process=False))
    create_engine(EngineSettings(backend="embedded", model="e", cpu_threads=0, own_process=False))
    assert [m["num_threads"] for m in made] == [1, 0]  # 0: torch's default, one per core
