"""Camera images to RGB arrays, the resize policy, and encoding for the engines.

Written against plain fields (encoding, width, height, step, data bytes) so the ROS node only
hands over message fields and everything here is testable without ROS. No copy is made where
none is needed: ``rgb8`` (with any row padding) comes back as a view on the message buffer and
``bgr8`` as a reversed-channel view; other encodings are converted into one new array. Every
size field is checked against the buffer before anything is allocated from it.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from egm_ros.core.types import GroundingError, Status

#: encoding -> (bytes per pixel, channels, dtype)
ENCODINGS: dict[str, tuple[int, int, str]] = {
    "rgb8": (3, 3, "u1"),
    "bgr8": (3, 3, "u1"),
    "rgba8": (4, 4, "u1"),
    "bgra8": (4, 4, "u1"),
    "mono8": (1, 1, "u1"),
    "8UC1": (1, 1, "u1"),
    "8UC3": (3, 3, "u1"),
    "mono16": (2, 1, "u2"),
    "16UC1": (2, 1, "u2"),
    "yuv422": (2, 2, "u1"),  # UYVY
    "uyvy": (2, 2, "u1"),
    "yuv422_yuy2": (2, 2, "u1"),  # YUYV
    "yuyv": (2, 2, "u1"),
}
MAX_SIDE = 16384
#: Compressed images larger than this many pixels are refused before decoding.
MAX_DECODED_PIXELS = 8192 * 8192


def _invalid(message: str) -> GroundingError:
    return GroundingError(Status.INVALID_INPUT, message)


def _buffer(data) -> np.ndarray:
    """A flat uint8 view of bytes, bytearray, memoryview, array.array or a numpy array."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as err:
        raise _invalid(f"image data is not a byte buffer ({type(data).__name__})") from err


def image_to_rgb(
    encoding: str, width: int, height: int, step: int, data, is_bigendian: bool = False
) -> np.ndarray:
    """The content of a ``sensor_msgs/Image`` as an H x W x 3 uint8 RGB array."""
    if encoding not in ENCODINGS:
        supported = ", ".join(sorted(ENCODINGS))
        raise _invalid(f"unsupported image encoding {encoding!r} (supported: {supported})")
    bpp, channels, kind = ENCODINGS[encoding]
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise _invalid(f"image size {width}x{height} out of range (1..{MAX_SIDE} per side)")
    if step < width * bpp:
        raise _invalid(f"step {step} is smaller than width x {bpp} bytes = {width * bpp}")
    buf = _buffer(data)
    needed = step * (height - 1) + width * bpp
    if buf.size < needed:
        raise _invalid(
            f"image data has {buf.size} bytes, {encoding} {width}x{height} with step {step} "
            f"needs {step * height}"
        )
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv") and width % 2:
        raise _invalid(f"{encoding} needs an even width, got {width}")
    rows = np.lib.stride_tricks.as_strided(
        buf, shape=(height, width * bpp), strides=(step, 1), writeable=False
    )
    if kind == "u2":
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        if step % 2 == 0 and buf.ctypes.data % 2 == 0:
            pixels = buf[: step * (height - 1) + width * 2].view(dtype)
            grey16 = np.lib.stride_tricks.as_strided(
                pixels, shape=(height, width), strides=(step, 2), writeable=False
            )
        else:
            grey16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        grey = _depth_to_8bit(grey16) if encoding == "16UC1" else (grey16 >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    pixels = rows.reshape(height, width * bpp // channels, channels) if channels > 1 else rows
    if encoding in ("rgb8", "8UC3"):
        return pixels
    if encoding == "bgr8":
        return pixels[:, :, ::-1]
    if encoding == "rgba8":
        return pixels[:, :, :3]
    if encoding == "bgra8":
        return pixels[:, :, 2::-1]
    if encoding in ("mono8", "8UC1"):
        return np.repeat(rows[:, :, None], 3, axis=2)
    return _yuv422_to_rgb(rows.reshape(height, width // 2, 4), uyvy=encoding in ("yuv422", "uyvy"))


def _depth_to_8bit(depth: np.ndarray) -> np.ndarray:
    """Depth (16UC1, 0 = no reading) stretched over its valid range so it is visible."""
    valid = depth[depth > 0]
    if valid.size == 0:
        return np.zeros(depth.shape, np.uint8)
    lo, hi = int(valid.min()), int(valid.max())
    scaled = (depth.astype(np.float32) - lo) * (255.0 / max(1, hi - lo))
    out = np.clip(scaled, 0, 255).astype(np.uint8)
    out[depth == 0] = 0
    return out


def _yuv422_to_rgb(quads: np.ndarray, uyvy: bool) -> np.ndarray:
    """4:2:2 macropixels (H x W/2 x 4) to RGB with BT.601 (limited range), vectorised."""
    q = quads.astype(np.float32)
    if uyvy:
        u, y0, v, y1 = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    else:
        y0, u, y1, v = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    y = np.stack([y0, y1], axis=-1).reshape(q.shape[0], -1) - 16.0
    u = np.repeat(u, 2, axis=1) - 128.0
    v = np.repeat(v, 2, axis=1) - 128.0
    r = 1.164 * y + 1.596 * v
    g = 1.164 * y - 0.392 * u - 0.813 * v
    b = 1.164 * y + 2.017 * u
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def compressed_to_rgb(fmt: str, data) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (jpeg, png; format strings such as ``"jpeg"`` or
    ``"bgr8; jpeg compressed bgr8"``) as an RGB array. The decoder reads the colour order
    from the file itself, so the ``bgr8`` in the format string needs no swap."""
    kind = fmt.lower()
    if fmt and not any(k in kind for k in ("jpeg", "jpg", "png")):
        raise _invalid(f"unsupported compressed format {fmt!r} (jpeg or png)")
    buf = _buffer(data)
    if buf.size == 0:
        raise _invalid("compressed image is empty")
    return _decode(io.BytesIO(buf.tobytes()), f"compressed image ({fmt or 'unknown format'})")


def _decode(source, what: str) -> np.ndarray:
    try:
        with Image.open(source) as img:
            w, h = img.size
            if w * h > MAX_DECODED_PIXELS:
                raise _invalid(f"{what} is {w}x{h}: larger than {MAX_DECODED_PIXELS} pixels")
            return np.asarray(img.convert("RGB"))
    except GroundingError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise _invalid(f"cannot decode {what}: {err}") from err


def load_image_file(path: str | Path) -> np.ndarray:
    """An image file as RGB (``invalid_input`` when missing or undecodable)."""
    p = Path(path)
    if not p.is_file():
        raise _invalid(f"image file not found: {p}")
    return _decode(p, f"image file {p}")


def limit_pixels(rgb: np.ndarray, max_pixels: int) -> np.ndarray:
    """The resize policy before inference: downscale (keeping the aspect ratio) so that
    height x width <= ``max_pixels``; the same object when already small enough or when
    ``max_pixels`` <= 0."""
    h, w = rgb.shape[:2]
    if max_pixels <= 0 or h * w <= max_pixels:
        return rgb
    scale = (max_pixels / float(h * w)) ** 0.5
    new_w, new_h = max(1, int(w * scale)), max(1, int(h * scale))
    resized = Image.fromarray(np.ascontiguousarray(rgb)).resize(
        (new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0
    )
    return np.asarray(resized)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes (accepts non-contiguous views such as the bgr8 view)."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def data_url(rgb: np.ndarray, quality: int = 90) -> str:
    """A base64 JPEG data URL, as the EGM authors send images to vLLM."""
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(rgb, quality)).decode()


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = "rgb8") -> dict:
    """The reverse of :func:`image_to_rgb`: ``sensor_msgs/Image`` fields for tests, the
    simulated camera and benchmarks (16-bit encodings get the grey level x 257)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    grey = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round()
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    if encoding in ("rgb8", "8UC3"):
        pixels = rgb
    elif encoding == "bgr8":
        pixels = rgb[:, :, ::-1]
    elif encoding == "rgba8":
        pixels = np.dstack([rgb, np.full((h, w), 255, np.uint8)])
    elif encoding == "bgra8":
        pixels = np.dstack([rgb[:, :, ::-1], np.full((h, w), 255, np.uint8)])
    elif encoding in ("mono8", "8UC1"):
        pixels = grey
    elif encoding in ("mono16", "16UC1"):
        pixels = grey.astype("<u2") * 257
    elif encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
        pixels = _rgb_to_yuv422(rgb, uyvy=encoding in ("yuv422", "uyvy"))
    else:
        raise ValueError(f"cannot encode {encoding!r}")
    data = np.ascontiguousarray(pixels).tobytes()
    return {
        "encoding": encoding,
        "width": w,
        "height": h,
        "step": len(data) // h,
        "data": data,
        "is_bigendian": False,
    }


def _rgb_to_yuv422(rgb: np.ndarray, uyvy: bool) -> np.ndarray:
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u2 = (u[:, 0::2] + u[:, 1::2]) / 2
    v2 = (v[:, 0::2] + v[:, 1::2]) / 2
    y0, y1 = y[:, 0::2], y[:, 1::2]
    order = (u2, y0, v2, y1) if uyvy else (y0, u2, y1, v2)
    return np.clip(np.stack(order, axis=-1).round(), 0, 255).astype(np.uint8)
