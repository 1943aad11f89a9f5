"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests, the soak run and benchmarks.

**Scripted answers, not a model.** It is a real server (stdlib ``ThreadingHTTPServer``: sockets,
HTTP, server-sent events, as ``vllm serve`` streams them), not a mock of the client library, so
the engine client and the node run their production code paths; what it answers is scripted by
``reply(request_json) -> str``. Faults can be switched on at run time: ``fail_status`` (HTTP
error), ``garbage`` (a body that is not JSON / broken SSE), ``hang`` (answers nothing for
``hang_seconds``), ``drop_after`` (closes the connection after N chunks), ``error_after`` (an
error event after N chunks), ``chunk_delay`` (slow streaming); ``fault(request_json)`` picks
one per request. It records the requests it received (the last ``keep_requests``), how many
were in flight at once, and streams the client closed early.

As its own process (what the fault tests kill and restart, and what the soak runs)::

    python -m dev.scripted_server --port 8000 [--fault hang|http500|garbage|drop|
        truncated|slow] [--script soak]

It prints ``serving http://127.0.0.1:PORT/v1`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_ANSWER = (
    "The red mug stands left of the laptop; its lower half is hidden.</think>\n"
    '```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "red mug"}]\n```'
)
#: An answer cut off inside its box (what a model writes when max_tokens ends it).
TRUNCATED_ANSWER = 'The mug is on the left.</think>\n```json\n[{"bbox_2d": [100, 2'
#: Text that is no answer at all (unbalanced brackets, no box).
GARBAGE_ANSWER = "I am not sure what you mean by that [[[ {"
_TOKENS = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")
#: The per-request faults ``fault()`` may name.
FAULTS = ("http500", "garbage", "hang", "drop")


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
        fault: Callable[[dict], str | None] | None = None,
        keep_requests: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.reply = reply or (lambda request: DEFAULT_ANSWER)
        self.fault = fault
        self.model = model
        self.api_key = api_key
        self.port = port
        self.chunk_delay = chunk_delay
        #: Serve https with this context (a test's self-signed certificate).
        self.ssl_context = ssl_context
        self.fail_status: int | None = None
        self.garbage = False
        self.hang = False
        self.hang_seconds = 600.0
        self.drop_after: int | None = None
        #: After this many chunks, an error event and the stream's end (vLLM's report of an
        #: engine failure mid-stream).
        self.error_after: int | None = None
        #: A careless proxy: error bodies repeat the request's Authorization header.
        self.echo_auth = False
        #: Print one line per chat request on stdout (how a test sees a server process busy).
        self.log_requests = False
        self.requests: deque[dict] = deque(maxlen=keep_requests)
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
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    def start(self) -> str:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        if self.ssl_context is not None:
            self._server.socket = self.ssl_context.wrap_socket(
                self._server.socket, server_side=True
            )
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
            if owner.log_requests:
                print(f"chat request {owner.hits}", flush=True)
            fault = owner.fault(body) if owner.fault is not None else None
            if owner.hang or fault == "hang":
                owner._stopping.wait(owner.hang_seconds)
                return
            if owner.fail_status is not None or fault == "http500":
                message = "scripted failure"
                if owner.echo_auth:
                    message += f" (Authorization: {self.headers.get('Authorization')})"
                self._json(owner.fail_status or 500, {"error": {"message": message}})
                return
            if owner.garbage or fault == "garbage":
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
                self._stream(body, text, drop_after=3 if fault == "drop" else owner.drop_after)
            else:
                self._json(200, self._completion(text))
        finally:
            owner._leave()

    def _completion(self, text: str) -> dict:
        """A whole (not streamed) chat completion."""
        tokens = len(split_tokens(text))
        return {
            "id": "cmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": self.owner.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
        }

    def _stream(self, body: dict, text: str, drop_after: int | None) -> None:
        owner = self.owner
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        every = split_tokens(text)
        tokens = every[: max(1, int(body.get("max_tokens") or 10**9))]
        # As vLLM reports it: "length" when max_tokens cut the answer, "stop" at its end.
        finish = "length" if len(tokens) < len(every) else "stop"
        base = {
            "id": "cmpl-test",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": owner.model,
        }
        try:
            for i, token in enumerate(tokens):
                if drop_after is not None and i >= drop_after:
                    self.connection.shutdown(2)
                    return
                if owner.error_after is not None and i >= owner.error_after:
                    self._event({"error": {"message": "scripted engine failure", "code": 500}})
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                if owner.chunk_delay:
                    time.sleep(owner.chunk_delay)
                chunk = dict(
                    base, choices=[{"index": 0, "delta": {"content": token}, "finish_reason": None}]
                )
                self._event(chunk)
            self._event(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": finish}]))
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


class ServerProcess:
    """The scripted server as a separate process on loopback, so a test or the soak can kill it
    mid-request (SIGKILL: no goodbye on any socket) and start it again on the same port."""

    def __init__(self, *args: str, port: int = 0, ready_timeout: float = 30.0) -> None:
        self.args = list(args)
        self.port = port
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.output: deque[str] = deque(maxlen=50)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, *args: str) -> str:
        """Start (with ``args`` instead of the constructor's, if given) and wait until it
        serves; the port of the first start is kept for every restart."""
        if args:
            self.args = list(args)
        self.output.clear()
        command = [sys.executable, "-m", "dev.scripted_server", "--port"]
        self.proc = subprocess.Popen(
            [*command, str(self.port), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: a signal to us does not reach it
        )
        deadline = time.monotonic() + self.ready_timeout
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        while not line.startswith("serving ") and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            line = self.proc.stdout.readline()
        if not line.startswith("serving "):
            self.kill()
            raise RuntimeError(f"the scripted server did not start: {line.strip()!r}")
        self.port = int(line.strip().rsplit(":", 1)[1].split("/", 1)[0])
        # Drain its output (tracebacks of dropped connections) so a full pipe never blocks it.
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        return self.base_url

    def _drain(self, proc: subprocess.Popen) -> None:
        try:
            for line in proc.stdout or ():
                self.output.append(line)
        except (OSError, ValueError):
            pass
        finally:
            if proc.stdout:
                proc.stdout.close()

    def wait_for_request(self, timeout: float = 60.0) -> None:
        """Until the server has received a chat request (it must run with ``--log-requests``)."""
        deadline = time.monotonic() + timeout
        while not any(line.startswith("chat request") for line in self.output):
            if time.monotonic() > deadline:
                raise TimeoutError("the scripted server received no chat request")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crashed server process goes away."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


# --------------------------------------------------------------------- the soak script
#: Markers in a referring expression that make the soak script misbehave on purpose.
SOAK_MARKERS = {
    "#absent": "answer",  # a complete answer with no box: not_found
    "#garbage": "answer",  # text that is no answer: malformed_output
    "#truncated": "answer",  # an answer cut off inside its box: malformed_output
    "#http500": "http500",  # engine_error after the retries
    "#badstream": "garbage",  # a body that is not SSE/JSON: engine_error
    "#drop": "drop",  # connection closed mid-answer: engine_unavailable
    "#hang": "hang",  # nothing within request_timeout: timeout
}


def _prompt_text(request: dict) -> str:
    """The text part of the one user message (the engine puts the image first)."""
    try:
        parts = request["messages"][0]["content"]
        return " ".join(p.get("text", "") for p in parts if isinstance(p, dict))
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def soak_reply(request: dict) -> str:
    """An EGM-style answer (reasoning, then a Qwen3-VL box) unless the expression asks for a
    scripted bad answer; amodal queries get a taller box."""
    text = _prompt_text(request)
    if "#absent" in text:
        return "Nothing here matches the description.</think>\n```json\n[]\n```"
    if "#garbage" in text:
        return GARBAGE_ANSWER
    if "#truncated" in text:
        return TRUNCATED_ANSWER
    box = [100, 200, 300, 600] if "amodal" in text else [100, 200, 300, 400]
    return (
        "The mug is on the table; the laptop hides its lower part.</think>\n"
        f'```json\n[{{"bbox_2d": {box}, "label": "mug"}}]\n```'
    )


def soak_fault(request: dict) -> str | None:
    """The transport fault the expression's marker asks for, if any."""
    text = _prompt_text(request)
    for marker, fault in SOAK_MARKERS.items():
        if fault != "answer" and marker in text:
            return fault
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="scripted OpenAI-compatible server on 127.0.0.1 (scripted answers, no model)"
    )
    parser.add_argument("--port", type=int, default=8000, help="0 = any free port")
    parser.add_argument("--model", default="egm-test")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds per SSE chunk")
    parser.add_argument(
        "--fault",
        choices=("none", "hang", "http500", "garbage", "drop", "truncated", "slow"),
        default="none",
        help="misbehave on every request: hang (no answer), http500, garbage (not SSE), drop "
        "(connection closed mid-answer), truncated (an answer cut off), slow (0.5 s a chunk)",
    )
    parser.add_argument(
        "--script",
        choices=("default", "soak"),
        default="default",
        help="soak: faults and bad answers chosen by #markers in the expression",
    )
    parser.add_argument("--hang-seconds", type=float, default=600.0)
    parser.add_argument("--log-requests", action="store_true", help="a line per chat request")
    args = parser.parse_args(argv)
    server = ScriptedOpenAIServer(model=args.model, port=args.port, chunk_delay=args.chunk_delay)
    server.hang_seconds = args.hang_seconds
    server.log_requests = args.log_requests
    if args.script == "soak":
        server.reply, server.fault = soak_reply, soak_fault
        server.requests = deque(maxlen=100)  # a long soak must not grow the server
    if args.fault in FAULTS:
        server.fault = lambda request, fault=args.fault: fault
    elif args.fault == "truncated":
        server.reply = lambda request: TRUNCATED_ANSWER
    elif args.fault == "slow":
        server.chunk_delay = 0.5
    print(f"serving {server.start()}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
