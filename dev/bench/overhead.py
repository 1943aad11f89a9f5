"""Per-request overhead of the node path without the model: ROS image message -> RGB (a JPEG
over max_pixels decoded at a reduced scale, as the node does) -> resize (max_pixels) -> encode
for the engine (JPEG data URL, as sent to vLLM / trtllm-serve) -> parse the answer ->
GroundingResult message. Prints p50/p95 ms per resolution and input kind, the share of the EGM
paper's 737 ms per request, and how many full-frame buffers one request makes.

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
from egm_ros.core.compressed import DecodedImage, decode_compressed
from egm_ros.core.families import Family, model_input_size
from egm_ros.core.grounder import DEFAULT_MAX_PIXELS
from egm_ros.core.images import data_url, image_to_rgb, limit_pixels
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
    copy counter can look at each: decode, resize, encode (for the OpenAI engine), result."""

    decode: Callable[[], DecodedImage]
    to_msg: ToMsg

    def resize(self, decoded: DecodedImage) -> np.ndarray:
        return limit_pixels(decoded.rgb, DEFAULT_MAX_PIXELS)

    def encode(self, sent: np.ndarray) -> str:
        return data_url(sent, 90)

    def result(self, decoded: DecodedImage, sent: np.ndarray) -> object:
        w, h = decoded.source_size  # boxes in the frame's pixels, also after a reduced decode
        parsed = parse_answer(
            ANSWER,
            Family.QWEN3_VL,
            (w, h),
            model_input_size=model_input_size(Family.QWEN3_VL, sent.shape[1], sent.shape[0]),
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
        decoded = self.decode()
        sent = self.resize(decoded)
        self.encode(sent)
        return self.result(decoded, sent)


def _field_decoder(kind: str, fields: dict) -> Callable[[], DecodedImage]:
    if kind == "raw":
        size = (fields["width"], fields["height"])
        return lambda: DecodedImage(
            image_to_rgb(fields["encoding"], *size, fields["step"], fields["data"]),
            size,
        )
    return lambda: decode_compressed("jpeg", fields["data"], DEFAULT_MAX_PIXELS)


def _message_decoder(kind: str, rgb: np.ndarray, jpeg: bytes) -> Callable[[], DecodedImage] | None:
    """The node's own conversion (``decode_image_msg``) on real sensor_msgs messages, when
    rclpy and the interfaces are importable."""
    try:
        from sensor_msgs.msg import CompressedImage, Image

        from egm_ros.node.conversions import decode_image_msg
    except ImportError:
        return None
    h, w = rgb.shape[:2]
    if kind == "raw":
        msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
        msg.data = rgb.tobytes()
    else:
        msg = CompressedImage(format="jpeg")
        msg.data = jpeg
    return lambda: decode_image_msg(msg, DEFAULT_MAX_PIXELS)


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
    try:
        from std_msgs.msg import Header

        from egm_ros.node.conversions import outcome_to_msg
    except ImportError:
        return "json (rclpy not available)", lambda o, w, h: json.dumps(o.to_json_dict())
    header = Header(frame_id="camera")
    return "GroundingResult", lambda o, w, h: outcome_to_msg(o, header, "bench", (w, h))


def run(repeats: int, resolutions: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """The overhead rows for each resolution and input kind, as the report stores them."""
    target_name, to_msg = result_converter()
    rows = []
    for name, (w, h) in (resolutions or RESOLUTIONS).items():
        rgb = camera_frame(w, h)
        buf = io.BytesIO()
        PILImage.fromarray(rgb).save(buf, format="JPEG", quality=90)
        jpeg = buf.getvalue()
        fields = {
            "raw": {
                "encoding": "rgb8",
                "width": w,
                "height": h,
                "step": w * 3,
                "data": rgb.tobytes(),
            },
            "compressed": {"data": jpeg},
        }
        for kind in ("raw", "compressed"):
            decode = _message_decoder(kind, rgb, jpeg) or _field_decoder(kind, fields[kind])
            path = NodePath(decode, to_msg)
            samples, cpu = timed_wall_and_cpu(path.run, repeats)
            copies = count_full_frame_copies(path, w * h * 3)
            p50, p95 = (percentile(list(samples), q) for q in (50, 95))
            rows.append(
                {
                    "resolution": name,
                    "input": kind,
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
