"""A scripted test engine (a stand-in for a model, named as such) for the grounder and the
request path: it answers each prompt with a scripted text, records the calls, and can be held
(``gate``) so tests control when a request finishes."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from egm_ros.core.engine import Engine, EngineOutput, EngineRequest
from egm_ros.core.types import GroundingError, Mode


class ScriptedEngine(Engine):
    """Test double: answers each prompt with a scripted text and records the calls."""

    backend = "scripted-test-engine"

    def __init__(
        self,
        visible: str = "",
        amodal: str = "",
        error: GroundingError | None = None,
        finish_reason: str = "stop",
    ):
        self.answers = {Mode.VISIBLE: visible, Mode.AMODAL: amodal}
        self.error = error
        self.finish_reason = finish_reason
        self.calls: list[list[EngineRequest]] = []
        self.timeouts: list[float] = []
        #: Set by default; a test clears it to hold every call until it sets it again.
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Semaphore(0)  # released once per call, before the gate

    @property
    def model_name(self) -> str:
        return "scripted"

    def generate(self, requests: Sequence[EngineRequest], timeout: float) -> list[EngineOutput]:
        self.calls.append(list(requests))
        self.timeouts.append(timeout)
        self.started.release()
        self.gate.wait(30)
        if self.error is not None:
            raise self.error
        outputs = []
        for request in requests:
            mode = Mode.AMODAL if "amodal" in request.prompt else Mode.VISIBLE
            text = self.answers[mode]
            if request.on_progress:
                request.on_progress(3, text[:5])
            outputs.append(
                EngineOutput(
                    text=text,
                    tokens=len(text.split()),
                    inference_ms=1.0,
                    finish_reason=self.finish_reason,
                )
            )
        return outputs


class BytesEngine(ScriptedEngine):
    """A scripted engine that sends image bytes, as the OpenAI-compatible and vLLM ones do."""

    takes_encoded = True


class ServerResizingEngine(BytesEngine):
    """A byte-taking engine whose server resizes every image to ``server_max_pixels`` (as the
    OpenAI engine with that setting)."""

    resizes_encoded = True

    def __init__(self, server_max_pixels: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.server_max_pixels = server_max_pixels

    @property
    def processor_max_pixels(self) -> int | None:
        return self.server_max_pixels


def answer(*boxes: list[int]) -> str:
    items = ", ".join(f'{{"bbox_2d": {list(b)}, "label": "mug"}}' for b in boxes)
    return f"I see it.</think>```json\n[{items}]\n```"
