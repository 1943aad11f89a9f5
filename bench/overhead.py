"""Per-request overhead of the node path without the model: ROS image message -> RGB -> resize
(max_pixels) -> encode for the engine (JPEG data URL, as sent to vLLM / trtllm-serve) -> parse
the answer -> GroundingResult message. Prints p50/p95 ms per resolution and input kind, and the
share of the EGM paper's 737 ms per request.

Run: ``.venv/bin/python bench/overhead.py [--repeats N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import io
import json
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from PIL import Image as PILImage

from egm_ros.core.families import Family, model_input_size
from egm_ros.core.grounder import DEFAULT_MAX_PIXELS
from egm_ros.core.images import compressed_to_rgb, data_url, image_to_rgb, limit_pixels
from egm_ros.core.parsing import parse_answer
from egm_ros.core.types import GroundedObject, GroundingOutcome, Mode, Status

PAPER_MS = 737.0
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


def timed(fn: Callable[[], object], repeats: int) -> np.ndarray:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return np.asarray(samples)


def node_path(kind: str, fields: dict, to_msg: Callable[[GroundingOutcome, int, int], object]):
    """One request's work around the engine, as the node does it."""

    def run() -> object:
        if kind == "raw":
            rgb = image_to_rgb(
                fields["encoding"],
                fields["width"],
                fields["height"],
                fields["step"],
                fields["data"],
                False,
            )
        else:
            rgb = compressed_to_rgb("jpeg", fields["data"])
        sent = limit_pixels(rgb, DEFAULT_MAX_PIXELS)
        data_url(sent, 90)
        h, w = rgb.shape[:2]
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
        return to_msg(outcome, w, h)

    return run


def result_converter() -> tuple[str, Callable[[GroundingOutcome, int, int], object]]:
    try:
        from std_msgs.msg import Header

        from egm_ros.node.conversions import outcome_to_msg
    except ImportError:
        return "json (rclpy not available)", lambda o, w, h: json.dumps(o.to_json_dict())
    header = Header(frame_id="camera")
    return "GroundingResult", lambda o, w, h: outcome_to_msg(o, header, "bench", (w, h))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    args = parser.parse_args()
    target_name, to_msg = result_converter()
    rows = []
    for name, (w, h) in RESOLUTIONS.items():
        rgb = camera_frame(w, h)
        buf = io.BytesIO()
        PILImage.fromarray(rgb).save(buf, format="JPEG", quality=90)
        inputs = {
            "raw": {
                "encoding": "rgb8",
                "width": w,
                "height": h,
                "step": w * 3,
                "data": rgb.tobytes(),
            },
            "compressed": {"data": buf.getvalue()},
        }
        for kind, fields in inputs.items():
            run = node_path(kind, fields, to_msg)
            samples = timed(run, args.repeats)
            tracemalloc.start()
            run()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            p50, p95 = np.percentile(samples, [50, 95])
            rows.append(
                {
                    "resolution": name,
                    "input": kind,
                    "p50_ms": round(float(p50), 2),
                    "p95_ms": round(float(p95), 2),
                    "share_of_737ms_pct": round(100 * float(p50) / PAPER_MS, 3),
                    "peak_alloc_mb": round(peak / 2**20, 1),
                    "frame_mb": round(w * h * 3 / 2**20, 1),
                }
            )
    print(f"node overhead without the model (result as {target_name}; {args.repeats} repeats)")
    print(
        f"{'resolution':>10} {'input':>10} {'p50 ms':>8} {'p95 ms':>8} {'% of 737':>9} "
        f"{'peak MB':>8} {'frame MB':>8}"
    )
    for r in rows:
        print(
            f"{r['resolution']:>10} {r['input']:>10} {r['p50_ms']:>8} {r['p95_ms']:>8} "
            f"{r['share_of_737ms_pct']:>9} {r['peak_alloc_mb']:>8} {r['frame_mb']:>8}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"overhead": rows}, f, indent=2)


if __name__ == "__main__":
    main()
