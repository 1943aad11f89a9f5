"""How fast the JPEG decoders at hand decode the overhead bench's camera frame, whole and scaled
inside the DCT (issue 17's compressed-frame goals): OpenCV (``IMREAD_REDUCED_COLOR_2/4/8``),
Pillow's ``Image.draft`` (libjpeg's scaled IDCT), and simplejpeg when installed (TurboJPEG's
M/8 scaling through ``min_height``, with and without its fast DCT and upsampling). All three
are libjpeg-turbo underneath. Not part of ``make bench``; run it when the question comes back:

    python -m dev.bench.jpeg_decoders [--repeats 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from PIL import Image

from dev.bench.overhead import RESOLUTIONS, camera_frame, timed_wall_and_cpu
from dev.bench.report import format_table
from dev.stats import percentile

_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def decoders(data: bytes, width: int, height: int) -> dict[str, Callable[[], np.ndarray]]:
    """Name -> a call decoding ``data`` (a ``width`` x ``height`` JPEG) to an array."""
    buf = np.frombuffer(data, np.uint8)
    out: dict[str, Callable[[], np.ndarray]] = {}
    for k, flag in _REDUCED.items():
        out[f"opencv 1/{k}"] = lambda flag=flag: cv2.imdecode(buf, flag)
    for k in (1, 2, 4, 8):
        out[f"pillow draft 1/{k}"] = lambda k=k: _pillow_draft(data, width // k, height // k)
    try:
        import simplejpeg
    except ImportError:
        return out
    for eighths in (8, 6, 4, 1):  # 6/8: the M/8 scale that keeps 1080p over 1,003,520 pixels
        for fast in (False, True):
            name = f"simplejpeg {eighths}/8{' fast' if fast else ''}"
            out[name] = lambda e=eighths, f=fast: simplejpeg.decode_jpeg(
                data, min_height=height * e // 8, min_width=1, fastdct=f, fastupsample=f
            )
    return out


def _pillow_draft(data: bytes, width: int, height: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (width, height))  # the smallest DCT scale still at least this size
        return np.asarray(img)


def run(repeats: int, resolutions: dict[str, tuple[int, int]] | None = None) -> list[dict]:
    """One row per resolution and decoder: output size, CPU and wall p50 in ms."""
    rows = []
    for name, (w, h) in (resolutions or {"1920x1080": RESOLUTIONS["1920x1080"]}).items():
        rgb = camera_frame(w, h)
        ok, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        data = jpeg.tobytes()
        for decoder, call in decoders(data, w, h).items():
            shape = call().shape
            wall, cpu = timed_wall_and_cpu(call, repeats)
            rows.append(
                {
                    "resolution": name,
                    "jpeg_kb": len(data) // 1024,
                    "decoder": decoder,
                    "output": f"{shape[1]}x{shape[0]}",
                    "cpu_p50_ms": round(percentile(list(cpu), 50), 2),
                    "p50_ms": round(percentile(list(wall), 50), 2),
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    keys = ("resolution", "jpeg_kb", "decoder", "output", "cpu_p50_ms", "p50_ms")
    headers = ("resolution", "KB", "decoder", "output", "CPU p50 ms", "p50 ms")
    return format_table(headers, [tuple(r[k] for k in keys) for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    sizes = {k: RESOLUTIONS[k] for k in ("1920x1080", "3840x2160")}
    rows = run(args.repeats, sizes)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"jpeg_decoders": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
