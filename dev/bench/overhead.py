"""Per-request overhead of the node path without the model, with the OpenAI engine (a server
such as vLLM or trtllm-serve): ROS image message -> RGB (a JPEG over max_pixels decoded at a
reduced scale; a JPEG within it not decoded at all, its bytes go to the server) -> resize
(max_pixels) -> encode for the engine (data URL: the frame's own bytes, or JPEG from the
pixels) -> parse the answer -> GroundingResult message. Prints p50/p95 ms per resolution and
input kind, the share of the EGM paper's 737 ms per request, and how many full-frame buffers
one request makes. Needs rclpy and the built interfaces (the node's own conversions run).

Run: ``.venv/bin/python -m dev.bench.overhead [--repeats N] [--json out.json]`` (``make bench``
runs it as part of ``python -m dev.bench``).
"""

from __future__ import annotations

import argparse
import io
import json
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage

from dev.bench.report import PAPER_MS, format_table
from dev.stats import percentile
from egm_ros.core.families import Family, model_input_size
from egm_ros.core.grounder import DEFAULT_MAX_PIXELS, Grounder, GrounderConfig, PreparedImage
from egm_ros.core.images import data_url
from egm_ros.core.parsing import parse_answer
from egm_ros.core.types import GroundedObject, GroundingOutcome, Mode, Status

RESOLUTIONS = {
    "640x480": (640, 480),
    "1280x720": (1280, 720),
    "1920x1080": (1920, 1080),
    "3840x2160": (3840, 2160),
}
ANSWER = (
    "The mug is behind the laptop, on the left; the laptop hides its lower half, so the "
    "full mug extends considerably downwards.</think>\n```json\n"
    '[{"bbox_2d": [312, 240, 455, 610], "label": "mug"}]\n```'
)
ToMsg = Callable[[GroundingOutcome, int, int], object]


def camera_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A camera-like frame (smooth gradients plus noise: JPEG work comparable to a real one)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            (x * 255 // max(1, width - 1)),
            (y * 255 // max(1, height - 1)),
            ((x + y) * 127 // max(1, width + height)),
        ],
        axis=-1,
    )
    noise = rng.integers(0, 24, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def timed_wall_and_cpu(fn: Callable[[], object], repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and process CPU ms of each call: on a loaded machine the wall time includes
    waiting for a core, the CPU time is the work itself (all threads, OpenCV's included)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    return np.asarray(wall), np.asarray(cpu)


@dataclass
class NodePath:
    """One request's work around the engine, as the node does it, split into stages so the
    copy counter can look at each: decode (the node's ``frame_input``: a compressed frame whose
    own bytes go to the server stays undecoded), resize (the grounder's ``prepare``), encode
    (the OpenAI engine's data URL: the frame's bytes or JPEG from pixels), result."""

    decode: Callable[[], Any]  # -> FrameInput (decoded or None, encoded, source_size)
    to_msg: ToMsg
    grounder: Grounder

    def resize(self, frame: Any) -> PreparedImage:
        rgb = frame.decoded.rgb if frame.decoded is not None else None
        return self.grounder.prepare(rgb, frame.encoded, frame.source_size)

    def encode(self, sent: PreparedImage) -> str:
        return data_url(sent.image, 90, sent.encoded)

    def result(self, frame: Any, sent: PreparedImage) -> object:
        w, h = sent.source_size  # boxes in the frame's pixels, also after a reduced decode
        parsed = parse_answer(
            ANSWER,
            Family.QWEN3_VL,
            (w, h),
            model_input_size=model_input_size(Family.QWEN3_VL, *sent.size),
        )
        outcome = GroundingOutcome(
            status=Status.OK,
            mode=Mode.VISIBLE,
            prompt="the mug",
            objects=[GroundedObject(visible=b, label=label) for b, label in parsed.boxes],
            reasoning=parsed.reasoning,
        )
        return self.to_msg(outcome, w, h)

    def run(self) -> object:
        frame = self.decode()
        sent = self.resize(frame)
        self.encode(sent)
        return self.result(frame, sent)


def server_grounder(max_pixels: int, server_max_pixels: int = 0) -> Grounder:
    """The grounder of a node with the OpenAI engine (never called here: only its settings and
    the engine's kind matter to the path)."""
    from egm_ros.engines.openai_engine import OpenAIEngine

    engine = OpenAIEngine("http://127.0.0.1:9/v1", "bench", server_max_pixels=server_max_pixels)
    return Grounder(engine, GrounderConfig(family=Family.QWEN3_VL, max_pixels=max_pixels))


def _message_decoder(kind: str, rgb: np.ndarray, jpeg: bytes, grounder: Grounder) -> Callable:
    """The node's own conversion (``frame_input``) on a real sensor_msgs message."""
    from sensor_msgs.msg import CompressedImage, Image

    from egm_ros.node.conversions import frame_input

    h, w = rgb.shape[:2]
    if kind == "raw":
        msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
        msg.data = rgb.tobytes()
    else:
        msg = CompressedImage(format="jpeg")
        msg.data = jpeg
    return lambda: frame_input(msg, grounder)


def count_full_frame_copies(path: NodePath, frame_bytes: int) -> dict[str, int]:
    """Full-frame-sized pixel buffers one request writes, per stage: Pillow images made while
    decoding (Pillow's own memory, which tracemalloc does not see) plus the stage's peak of
    traced (numpy / Python) memory in whole frames. A view on the message buffer counts 0."""

    def frames(peak: int, start: int) -> int:
        return int((peak - start) / frame_bytes + 0.02)

    counts: dict[str, int] = {}
    tracemalloc.start()
    try:
        keep: list[Any] = []
        stages: list[tuple[str, Callable[[], Any]]] = [
            ("decode", path.decode),
            ("resize", lambda: path.resize(keep[0])),
            ("encode", lambda: path.encode(keep[1])),
            ("result", lambda: path.result(keep[0], keep[1])),
        ]
        for name, stage in stages:
            pil_before = PILImage.core.get_stats()["new_count"]
            start = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            out = stage()
            peak = tracemalloc.get_traced_memory()[1]
            pil_images = PILImage.core.get_stats()["new_count"] - pil_before
            counts[name] = frames(peak, start) + (pil_images if name == "decode" else 0)
            if name in ("decode", "resize"):
                keep.append(out)
    finally:
        tracemalloc.stop()
    counts["total"] = sum(counts.values())
    return counts


def result_converter() -> tuple[str, ToMsg]:
    from std_msgs.msg import Header

    from egm_ros.node.conversions import outcome_to_msg

    header = Header(frame_id="camera")
    return "GroundingResult", lambda o, w, h: outcome_to_msg(o, header, "bench", (w, h))


#: Input kinds of the rows: (name, message kind, the node's max_pixels, server_max_pixels).
INPUTS = (
    ("raw", "raw", DEFAULT_MAX_PIXELS, 0),
    ("compressed", "compressed", DEFAULT_MAX_PIXELS, 0),
    # max_pixels 0: the node never resizes, so every JPEG goes to the server as it is and the
    # server's processor bounds the pixels at the model's own limit
    ("compressed, max_pixels 0", "compressed", 0, 0),
    # server_max_pixels: the server's processor resizes to the node's limit, so every JPEG goes
    # as it is (vLLM with --trust-request-mm-kwargs)
    ("compressed, server_max_pixels", "compressed", DEFAULT_MAX_PIXELS, DEFAULT_MAX_PIXELS),
)


def run(repeats: int, resolutions: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """The overhead rows for each resolution and input kind, as the report stores them."""
    target_name, to_msg = result_converter()
    rows = []
    for name, (w, h) in (resolutions or RESOLUTIONS).items():
        rgb = camera_frame(w, h)
        buf = io.BytesIO()
        PILImage.fromarray(rgb).save(buf, format="JPEG", quality=90)
        jpeg = buf.getvalue()
        for label, kind, max_pixels, server_max_pixels in INPUTS:
            grounder = server_grounder(max_pixels, server_max_pixels)
            path = NodePath(_message_decoder(kind, rgb, jpeg, grounder), to_msg, grounder)
            samples, cpu = timed_wall_and_cpu(path.run, repeats)
            copies = count_full_frame_copies(path, w * h * 3)
            grounder.engine.close()
            p50, p95 = (percentile(list(samples), q) for q in (50, 95))
            rows.append(
                {
                    "resolution": name,
                    "input": label,
                    "p50_ms": round(float(p50), 2),
                    "p95_ms": round(float(p95), 2),
                    "share_of_737ms_pct": round(100 * float(p50) / PAPER_MS, 3),
                    "cpu_p50_ms": round(percentile(list(cpu), 50), 2),
                    "full_frame_copies": copies["total"],
                    "copies_by_stage": copies,
                    "frame_mb": round(w * h * 3 / 2**20, 1),
                }
            )
    return {"result_as": target_name, "repeats": repeats, "rows": rows}


def table(section: dict[str, Any], fmt: Callable[..., str] = format_table) -> str:
    """The overhead rows as a text table (or Markdown with ``fmt=markdown_table``)."""
    rows = [
        (
            r["resolution"],
            r["input"],
            r["p50_ms"],
            r["p95_ms"],
            r["share_of_737ms_pct"],
            r.get("cpu_p50_ms"),
            r["full_frame_copies"],
        )
        for r in section["rows"]
    ]
    headers = (
        "resolution",
        "input",
        "p50 ms",
        "p95 ms",
        f"% of {PAPER_MS:.0f} ms",
        "CPU p50 ms",
        "copies",
    )
    return fmt(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    args = parser.parse_args()
    section = run(args.repeats)
    print(
        f"node overhead without the model (result as {section['result_as']}; "
        f"{args.repeats} repeats)"
    )
    print(table(section))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"overhead": section}, f, indent=2)


if __name__ == "__main__":
    main()
