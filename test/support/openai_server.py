"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It is a real server (stdlib ``ThreadingHTTPServer``: sockets, HTTP, server-sent events, as
``vllm serve`` streams them), not a mock of the client library: the engine under test uses its
production code path. What it answers is scripted by ``reply(request_json) -> str``, and faults
can be switched on at run time: ``fail_status`` (HTTP error), ``garbage`` (a body that is not
JSON / broken SSE), ``hang`` (never answers), ``drop_after`` (closes the connection after N
chunks), ``chunk_delay`` (slow streaming). It records the requests it received, how many were
in flight at once, and streams the client closed early.

Run on its own: ``python test/support/openai_server.py --port 8000``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_ANSWER = (
    "The red mug stands left of the laptop; its lower half is hidden.</think>\n"
    '```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "red mug"}]\n```'
)
_TOKENS = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")


def split_tokens(text: str) -> list[str]:
    """Token-like pieces (words, punctuation), one per SSE chunk as vLLM streams tokens."""
    return _TOKENS.findall(text)


class ScriptedOpenAIServer:
    def __init__(
        self,
        reply: Callable[[dict], str] | None = None,
        model: str = "egm-test",
        api_key: str | None = None,
        port: int = 0,
        chunk_delay: float = 0.0,
    ) -> None:
        self.reply = reply or (lambda request: DEFAULT_ANSWER)
        self.model = model
        self.api_key = api_key
        self.port = port
        self.chunk_delay = chunk_delay
        self.fail_status: int | None = None
        self.garbage = False
        self.hang = False
        self.drop_after: int | None = None
        self.requests: list[dict] = []
        self.hits = 0
        self.max_in_flight = 0
        self.aborted_streams = 0
        self.completed_streams = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> str:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _enter(self) -> None:
        with self._lock:
            self.hits += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    owner: ScriptedOpenAIServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        key = self.owner.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._json(401, {"error": {"message": "invalid API key", "type": "auth"}})
        return False

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._json(200, {})
        elif self.path.rstrip("/") == "/v1/models":
            if self._authorised():
                model = {"id": self.owner.model, "object": "model", "created": 0, "owned_by": "t"}
                # model="" scripts a server that has no model loaded
                self._json(200, {"object": "list", "data": [model] if self.owner.model else []})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": "not found"}})
            return
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self._authorised():
            return
        owner = self.owner
        owner._enter()
        try:
            with owner._lock:
                owner.requests.append(body)
            if owner.hang:
                owner._stopping.wait(600)
                return
            if owner.fail_status is not None:
                self._json(owner.fail_status, {"error": {"message": "scripted failure"}})
                return
            if owner.garbage:
                self.send_response(200)
                self.send_header(
                    "Content-Type",
                    "text/event-stream" if body.get("stream") else "application/json",
                )
                self.end_headers()
                self.wfile.write(b"data: {this is not json\n\n<html>oops</html>\n\n")
                return
            text = owner.reply(body)
            if body.get("stream"):
                self._stream(body, text)
            else:
                tokens = len(split_tokens(text))
                self._json(
                    200,
                    {
                        "id": "cmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": owner.model,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text},
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 1,
                            "completion_tokens": tokens,
                            "total_tokens": tokens + 1,
                        },
                    },
                )
        finally:
            owner._leave()

    def _stream(self, body: dict, text: str) -> None:
        owner = self.owner
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        tokens = split_tokens(text)[: max(1, int(body.get("max_tokens") or 10**9))]
        base = {
            "id": "cmpl-test",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": owner.model,
        }
        try:
            for i, token in enumerate(tokens):
                if owner.drop_after is not None and i >= owner.drop_after:
                    self.connection.shutdown(2)
                    return
                if owner.chunk_delay:
                    time.sleep(owner.chunk_delay)
                chunk = dict(
                    base, choices=[{"index": 0, "delta": {"content": token}, "finish_reason": None}]
                )
                self._event(chunk)
            self._event(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event(
                    dict(
                        base,
                        choices=[],
                        usage={
                            "prompt_tokens": 1,
                            "completion_tokens": len(tokens),
                            "total_tokens": len(tokens) + 1,
                        },
                    )
                )
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            with owner._lock:
                owner.completed_streams += 1
        except (BrokenPipeError, ConnectionResetError):
            with owner._lock:
                owner.aborted_streams += 1

    def _event(self, payload: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description="scripted OpenAI-compatible test server")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="egm-test")
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args()
    server = ScriptedOpenAIServer(model=args.model, port=args.port, chunk_delay=args.chunk_delay)
    print(f"serving {server.start()}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
