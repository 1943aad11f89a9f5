"""The OpenAI-compatible engine against a real HTTP server on loopback (scripted answers):
message layout, sampling fields, streaming, early stop, concurrency, every fault mapped to its
status within the timeout, bounded retries, API keys."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
import time

import numpy as np
import pytest
from openai_server import ScriptedOpenAIServer, ServerProcess, split_tokens

from egm_ros.core.engine import EncodedImage, EngineRequest, SamplingParams
from egm_ros.core.types import GroundingError, Status
from egm_ros.engines.openai_engine import OpenAIEngine, sse_events

IMAGE = np.zeros((32, 48, 3), np.uint8)
LONG = "word " * 200 + '</think>```json\n[{"bbox_2d": [1, 2, 3, 4]}]\n```' + " trailing" * 200


@pytest.fixture
def server():
    with ScriptedOpenAIServer(model="egm-test") as srv:
        yield srv


def engine_for(server, **kwargs) -> OpenAIEngine:
    kwargs.setdefault("backoff_s", 0.01)
    return OpenAIEngine(server.base_url, **kwargs)


def request(**kwargs) -> EngineRequest:
    return EngineRequest(image=IMAGE, prompt="Please find <ref>the mug</ref>", **kwargs)


def test_message_layout_sampling_and_streamed_text(server) -> None:
    with engine_for(server) as engine:
        sampling = SamplingParams(max_new_tokens=77, temperature=0.0, top_p=1.0, top_k=20)
        (out,) = engine.generate([request(sampling=sampling)], timeout=10)
        assert engine.health()
    assert engine.model_name == "egm-test"  # the server's model, asked once
    assert "bbox_2d" in out.text and out.text.startswith("The red mug")
    assert out.tokens > 10 and out.inference_ms > 0 and out.finish_reason == "stop"
    (body,) = server.requests
    (message,) = body["messages"]  # one user message, no system prompt
    assert message["role"] == "user"
    image_part, text_part = message["content"]  # image first, then text
    assert image_part["type"] == "image_url"
    assert image_part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert text_part == {"type": "text", "text": "Please find <ref>the mug</ref>"}
    assert body["max_tokens"] == 77 and body["temperature"] == 0.0 and body["top_p"] == 1.0
    assert body["top_k"] == 20 and body["repetition_penalty"] == 1.0
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_an_images_own_bytes_are_sent_unchanged(server) -> None:
    png = EncodedImage(b"\x89PNG\r\n\x1a\n as the file holds them", "image/png")
    with engine_for(server) as engine:
        engine.generate([request(encoded=png), request()], timeout=10)
    urls = sorted(b["messages"][0]["content"][0]["image_url"]["url"] for b in server.requests)
    jpeg_url, png_url = urls
    assert png_url == "data:image/png;base64," + base64.b64encode(png.data).decode()
    encoded_pixels = base64.b64decode(jpeg_url.removeprefix("data:image/jpeg;base64,"))
    assert encoded_pixels[:3] == b"\xff\xd8\xff"  # no bytes given: the pixels as JPEG


def test_early_stop_closes_the_stream_once_the_answer_is_complete(server) -> None:
    server.reply = lambda body: LONG
    server.chunk_delay = 0.002
    progress: list[int] = []
    with engine_for(server, model="egm-test") as engine:
        (out,) = engine.generate(
            [
                request(
                    stop_check=lambda text: text.endswith("```") and "</think>" in text,
                    on_progress=lambda n, text: progress.append(n),
                )
            ],
            timeout=20,
        )
    assert out.text.endswith("```") and "trailing" not in out.text
    assert out.finish_reason == "answer_complete"
    assert out.tokens == len(progress) == progress[-1]
    time.sleep(0.5)
    assert server.aborted_streams == 1 and server.completed_streams == 0


def test_requests_of_one_call_run_concurrently(server) -> None:
    server.chunk_delay = 0.01
    with engine_for(server, model="egm-test") as engine:
        outs = engine.generate([request(), request(), request()], timeout=20)
    assert len(outs) == 3 and all("bbox_2d" in o.text for o in outs)
    assert server.max_in_flight == 3


def test_server_down_is_engine_unavailable_after_bounded_retries() -> None:
    srv = ScriptedOpenAIServer()
    url = srv.start()
    srv.stop()
    engine = OpenAIEngine(url, model="m", max_retries=2, backoff_s=0.01)
    t0 = time.monotonic()
    with pytest.raises(GroundingError) as info:
        engine.generate([request()], timeout=5)
    assert info.value.status is Status.ENGINE_UNAVAILABLE
    assert "cannot reach" in info.value.message
    assert time.monotonic() - t0 < 5
    assert not engine.health()


def test_http_500_is_retried_then_engine_error(server) -> None:
    server.fail_status = 500
    with engine_for(server, model="egm-test", max_retries=2) as engine:
        with pytest.raises(GroundingError) as info:
            engine.generate([request()], timeout=10)
    assert info.value.status is Status.ENGINE_ERROR
    assert "HTTP 500" in info.value.message
    assert server.hits == 3  # the first try and two retries


def test_http_400_is_not_retried(server) -> None:
    server.fail_status = 400
    with engine_for(server, model="egm-test") as engine, pytest.raises(GroundingError) as info:
        engine.generate([request()], timeout=10)
    assert info.value.status is Status.ENGINE_ERROR and server.hits == 1


def test_garbage_is_engine_error(server) -> None:
    server.garbage = True
    with engine_for(server, model="egm-test") as engine, pytest.raises(GroundingError) as info:
        engine.generate([request()], timeout=10)
    assert info.value.status is Status.ENGINE_ERROR


def test_an_error_event_mid_stream_is_an_engine_error_with_the_servers_message(server) -> None:
    server.error_after = 2
    with engine_for(server, model="egm-test") as engine, pytest.raises(GroundingError) as info:
        engine.generate([request()], timeout=10)
    assert info.value.status is Status.ENGINE_ERROR
    assert "scripted engine failure" in str(info.value) and server.hits == 1


def test_sse_events_joins_data_lines_skips_other_fields_and_stops_at_done() -> None:
    lines = [
        ": a comment",
        'data: {"a":',
        "data: 1}",
        "",
        "event: message",
        'data:{"b": 2}',
        "",
        "data: [DONE]",
        "",
        'data: {"after": "done"}',
        "",
    ]
    assert list(sse_events(lines)) == [{"a": 1}, {"b": 2}]
    assert list(sse_events(['data: {"last": true}'])) == [{"last": True}]  # no closing blank


@pytest.mark.parametrize("payload", ["[1, 2]", "{not json"])
def test_sse_events_refuses_an_event_that_is_not_a_json_object(payload: str) -> None:
    with pytest.raises(ValueError):
        list(sse_events([f"data: {payload}", ""]))


def test_connection_dropped_mid_stream_is_engine_unavailable(server) -> None:
    server.drop_after = 3
    with engine_for(server, model="egm-test", max_retries=1) as engine:
        with pytest.raises(GroundingError) as info:
            engine.generate([request()], timeout=10)
    assert info.value.status is Status.ENGINE_UNAVAILABLE
    assert server.hits == 2


def test_hang_is_a_timeout_within_the_timeout(server) -> None:
    server.hang = True
    with engine_for(server, model="egm-test") as engine:
        t0 = time.monotonic()
        with pytest.raises(GroundingError) as info:
            engine.generate([request()], timeout=1.5)
        elapsed = time.monotonic() - t0
    server.hang = False
    assert info.value.status is Status.TIMEOUT
    assert elapsed < 4


def test_slow_stream_past_the_timeout_is_a_timeout(server) -> None:
    server.reply = lambda body: LONG
    server.chunk_delay = 0.05
    with engine_for(server, model="egm-test") as engine, pytest.raises(GroundingError) as info:
        engine.generate([request()], timeout=1.0)
    assert info.value.status is Status.TIMEOUT


def test_cancel_stops_the_request(server) -> None:
    server.reply = lambda body: LONG
    server.chunk_delay = 0.01
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with engine_for(server, model="egm-test") as engine, pytest.raises(GroundingError) as info:
        engine.generate([request(cancel=cancel)], timeout=20)
    assert info.value.status is Status.CANCELLED


def test_api_key_from_env_or_file_and_401_without(server, tmp_path, monkeypatch) -> None:
    server.api_key = "s3cret-key"
    monkeypatch.delenv("EGM_API_KEY", raising=False)
    with engine_for(server, model="egm-test") as engine, pytest.raises(GroundingError) as info:
        engine.generate([request()], timeout=5)
    assert "HTTP 401" in info.value.message and "s3cret" not in info.value.message
    monkeypatch.setenv("EGM_API_KEY", "s3cret-key")
    with engine_for(server, model="egm-test") as engine:
        assert "s3cret" not in repr(engine)
        assert engine.generate([request()], timeout=5)[0].text
    monkeypatch.delenv("EGM_API_KEY")
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-key\n")
    key_file.chmod(0o600)
    with engine_for(server, model="egm-test", api_key_file=str(key_file)) as engine:
        assert engine.generate([request()], timeout=5)[0].text


def test_cancel_returns_at_once_while_the_server_sends_nothing(server) -> None:
    server.hang = True
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with engine_for(server, model="egm-test") as engine, pytest.raises(GroundingError) as info:
        engine.generate([request(cancel=cancel)], timeout=20)
    assert info.value.status is Status.CANCELLED  # not TIMEOUT: it did not wait 20 s


def test_server_without_models_is_a_clear_error() -> None:
    with ScriptedOpenAIServer(model="") as srv, OpenAIEngine(srv.base_url) as engine:
        with pytest.raises(GroundingError) as info:
            engine.generate([request()], timeout=5)
    assert info.value.status is Status.ENGINE_ERROR and "no models" in info.value.message
    assert srv.hits == 0  # nothing was sent for generation


@pytest.mark.parametrize("url", ["ftp://host/v1", "127.0.0.1:8000", ""])
def test_bad_base_url_is_invalid_input(url: str) -> None:
    with pytest.raises(GroundingError) as info:
        OpenAIEngine(url)
    assert info.value.status is Status.INVALID_INPUT


def test_tls_verification_is_on_unless_switched_off() -> None:
    engine = OpenAIEngine("https://127.0.0.1:9/v1", model="m")
    assert engine._http._transport._pool._ssl_context.verify_mode.name == "CERT_REQUIRED"
    insecure = OpenAIEngine("https://127.0.0.1:9/v1", model="m", verify_tls=False)
    assert insecure._http._transport._pool._ssl_context.verify_mode.name == "CERT_NONE"


def test_usage_record_counts_tokens_when_the_stream_ends(server) -> None:
    server.reply = lambda body: "a b c d</think>[]"
    with engine_for(server, model="egm-test") as engine:
        (out,) = engine.generate([request()], timeout=5)
    assert out.tokens == len(split_tokens("a b c d</think>[]"))  # the server's usage record
    assert out.prompt_tokens == 1  # as the scripted server's usage record says
    assert json.dumps(server.requests[0]["messages"]).count("data:image/jpeg") == 1


def test_server_max_pixels_asks_the_servers_processor_for_that_limit(server) -> None:
    """vLLM's per-request ``mm_processor_kwargs``; never sent unless set."""
    with engine_for(server, model="egm-test") as plain:
        plain.generate([request()], timeout=5)
    assert plain.processor_max_pixels is None and not plain.resizes_encoded
    with engine_for(server, model="egm-test", server_max_pixels=1_003_520) as resizing:
        resizing.generate([request(), request()], timeout=5)
    assert resizing.processor_max_pixels == 1_003_520 and resizing.resizes_encoded
    first, *others = server.requests
    assert "mm_processor_kwargs" not in first
    assert [b["mm_processor_kwargs"] for b in others] == [{"max_pixels": 1_003_520}] * 2
    with pytest.raises(GroundingError) as err:
        engine_for(server, server_max_pixels=-1)
    assert err.value.status is Status.INVALID_INPUT


# ---------------------------------------------------------------- a server process
# The server runs as its own process on loopback: it is killed (SIGKILL, as a crash) and started
# again on the same port, and the same engine object must serve again without being rebuilt.

PROCESS_FAULTS = [
    ("hang", Status.TIMEOUT),  # accepts the request, answers nothing
    ("slow", Status.TIMEOUT),  # streams, but slower than the timeout allows
    ("http500", Status.ENGINE_ERROR),  # after the bounded retries
    ("garbage", Status.ENGINE_ERROR),  # a body that is neither SSE nor JSON
    ("drop", Status.ENGINE_UNAVAILABLE),  # the connection closes mid-answer, on every retry
]


def _generate_bounded(engine: OpenAIEngine, timeout: float) -> GroundingError:
    """The error of one generate call, which must end (hang detector: 10x the timeout)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            engine.generate([request()], timeout=timeout)
        except BaseException as err:  # noqa: BLE001 - handed to the test
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10 * timeout)
    assert not thread.is_alive(), "generate did not return"
    (error,) = errors
    assert isinstance(error, GroundingError), repr(error)
    return error


@pytest.mark.parametrize(("fault", "status"), PROCESS_FAULTS, ids=[f for f, _ in PROCESS_FAULTS])
def test_each_fault_of_a_server_process_then_the_restarted_server_serves(fault, status) -> None:
    with ServerProcess("--fault", fault, "--hang-seconds", "120") as server:
        with OpenAIEngine(server.base_url, model="egm-test", backoff_s=0.01) as engine:
            error = _generate_bounded(engine, timeout=2.0)
            assert error.status is status, error.message
            assert error.message and "\n" not in error.message
            server.kill()
            server.start("--fault", "none")  # the same port
            (out,) = engine.generate([request()], timeout=10)
    assert "bbox_2d" in out.text and out.finish_reason == "stop"


def test_server_process_not_up_then_started() -> None:
    server = ServerProcess()
    server.start()
    server.kill()  # the port is known and nothing listens on it
    with OpenAIEngine(server.base_url, backoff_s=0.01) as engine:  # model: asked of the server
        error = _generate_bounded(engine, timeout=5.0)
        assert error.status is Status.ENGINE_UNAVAILABLE and "cannot reach" in error.message
        assert not engine.health()
        with server:
            assert engine.health()
            (out,) = engine.generate([request()], timeout=10)
    assert "bbox_2d" in out.text and engine.model_name == "egm-test"


def test_server_process_killed_mid_answer_then_restarted() -> None:
    with ServerProcess("--chunk-delay", "0.2") as server:  # about 8 s per answer
        progress = threading.Event()
        with OpenAIEngine(server.base_url, model="egm-test", backoff_s=0.01) as engine:
            killer = threading.Thread(target=lambda: progress.wait(30) and server.kill())
            killer.start()
            with pytest.raises(GroundingError) as info:
                engine.generate([request(on_progress=lambda n, text: progress.set())], 30)
            killer.join()
            assert info.value.status is Status.ENGINE_UNAVAILABLE, info.value.message
            server.start("--chunk-delay", "0")
            (out,) = engine.generate([request()], timeout=10)
    assert progress.is_set() and "bbox_2d" in out.text


def test_an_untrusted_certificate_is_refused_unless_verification_is_switched_off(
    tmp_path,
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with ScriptedOpenAIServer(model="egm-test", ssl_context=context) as server:
        assert server.base_url.startswith("https://127.0.0.1:")
        with engine_for(server, model="egm-test") as engine, pytest.raises(GroundingError) as info:
            engine.generate([request()], timeout=5)
        assert info.value.status is Status.ENGINE_UNAVAILABLE
        assert "CERTIFICATE_VERIFY_FAILED" in info.value.message.upper().replace(" ", "_")
        assert server.hits == 0  # no request (and no API key) went over the untrusted link
        with engine_for(server, model="egm-test", verify_tls=False) as engine:
            (out,) = engine.generate([request()], timeout=5)
    assert "bbox_2d" in out.text and server.hits == 1
