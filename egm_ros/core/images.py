"""Camera images to RGB arrays, the resize policy, and encoding for the engines.

Written against plain fields (encoding, width, height, step, data bytes) so the ROS node only
hands over message fields and everything here is testable without ROS. No copy is made where
none is needed: ``rgb8``/``8UC3`` (with any row padding) come back as a view on the message
buffer, ``bgr8``, ``rgba8`` and ``bgra8`` as channel-selecting views; mono, 16-bit and YUV
encodings are converted into one new array. Every size field is checked against the buffer
before anything is allocated from it.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from egm_ros.core.engine import EncodedImage
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
_UYVY = ("yuv422", "uyvy")
_YUV422 = (*_UYVY, "yuv422_yuy2", "yuyv")
MAX_SIDE = 16384
#: Compressed images larger than this many pixels are refused before decoding.
MAX_DECODED_PIXELS = 8192 * 8192
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
#: Pixel modes a server decodes as we do (16-bit and float images we stretch, it would not).
_PLAIN_MODES = ("RGB", "L", "P", "RGBA", "LA", "CMYK", "YCbCr")
_EXIF_ORIENTATION = 0x0112
#: compressed_depth_image_transport puts a 12-byte config header before the PNG.
_DEPTH_HEADER = 12


def _invalid(message: str) -> GroundingError:
    return GroundingError(Status.INVALID_INPUT, message)


def _buffer(data) -> np.ndarray:
    """A flat, contiguous uint8 view of bytes, bytearray, memoryview, array.array or a
    numpy array (a strided numpy array is copied: the strided views below assume bytes)."""
    try:
        if isinstance(data, np.ndarray):
            return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as err:
        raise _invalid(f"image data is not a byte buffer ({type(data).__name__})") from err


def image_to_rgb(
    encoding: str, width: int, height: int, step: int, data, is_bigendian: bool = False
) -> np.ndarray:
    """The content of a ``sensor_msgs/Image`` as an H x W x 3 uint8 RGB array (read-only
    when it is a view on ``data``)."""
    if encoding not in ENCODINGS:
        supported = ", ".join(sorted(ENCODINGS))
        raise _invalid(f"unsupported image encoding {encoding!r} (supported: {supported})")
    bpp, channels, kind = ENCODINGS[encoding]
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise _invalid(f"image size {width}x{height} out of range (1..{MAX_SIDE} per side)")
    if step < width * bpp:
        raise _invalid(f"step {step} is smaller than width {width} x {bpp} bytes = {width * bpp}")
    buf = _buffer(data)
    if buf.size < step * height:
        raise _invalid(
            f"image data has {buf.size} bytes, {encoding} {width}x{height} with step {step} "
            f"needs step x height = {step * height}"
        )
    if encoding in _YUV422 and width % 2:
        raise _invalid(f"{encoding} needs an even width, got {width}")
    rows = np.lib.stride_tricks.as_strided(
        buf, shape=(height, width * bpp), strides=(step, 1), writeable=False
    )
    if kind == "u2":
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        if step % 2 == 0:  # numpy handles unaligned views, only the row stride must fit
            grey16 = buf[: step * height].view(dtype).reshape(height, step // 2)[:, :width]
        else:
            grey16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        grey = _depth_to_8bit(grey16) if encoding == "16UC1" else (grey16 >> 8).astype(np.uint8)
        return _grey_to_rgb(grey)
    if encoding in ("mono8", "8UC1"):
        return _grey_to_rgb(rows)
    if encoding in _YUV422:
        return _yuv422_to_rgb(rows.reshape(height, width // 2, 4), uyvy=encoding in _UYVY)
    pixels = rows.reshape(height, width, channels)
    if encoding == "bgr8":
        return pixels[:, :, ::-1]
    if encoding == "rgba8":
        return pixels[:, :, :3]
    if encoding == "bgra8":
        return pixels[:, :, 2::-1]
    return pixels  # rgb8, 8UC3


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    out = np.empty((*grey.shape, 3), np.uint8)
    for c in range(3):  # three plane copies: several times faster than np.repeat
        out[:, :, c] = grey
    return out


def contiguous_rgb(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as a C-contiguous array for Pillow; a view such as bgr8's reversed channels
    is copied plane by plane, which is several times faster than ``np.ascontiguousarray``
    (whose inner loop would run over the 3 channels)."""
    if rgb.flags.c_contiguous:
        return rgb
    out = np.empty(rgb.shape, rgb.dtype)
    if rgb.ndim != 3:
        out[...] = rgb
        return out
    for c in range(rgb.shape[2]):
        out[:, :, c] = rgb[:, :, c]
    return out


def _depth_to_8bit(depth: np.ndarray) -> np.ndarray:
    """Depth (0 = no reading) stretched over its valid range so it is visible; a flat valid
    range shows as white so it stays distinct from missing readings."""
    valid = depth[depth > 0]
    if valid.size == 0:
        return np.zeros(depth.shape, np.uint8)
    lo, hi = int(valid.min()), int(valid.max())
    if hi == lo:
        return np.where(depth > 0, 255, 0).astype(np.uint8)
    scaled = (depth.astype(np.float32) - lo) * (255.0 / (hi - lo))
    out = np.clip(scaled, 0, 255).astype(np.uint8)
    out[depth == 0] = 0
    return out


def _yuv422_to_rgb(quads: np.ndarray, uyvy: bool) -> np.ndarray:
    """4:2:2 macropixels (H x W/2 x 4) to RGB with BT.601 (limited range) in 8-bit fixed
    point; the chroma terms are computed once per pixel pair."""
    h, half = quads.shape[:2]
    y_idx, u_idx, v_idx = ((1, 3), 0, 2) if uyvy else ((0, 2), 1, 3)
    d = quads[:, :, u_idx].astype(np.int32) - 128
    e = quads[:, :, v_idx].astype(np.int32) - 128
    chroma = (409 * e + 128, 128 - 100 * d - 208 * e, 516 * d + 128)  # R, G, B
    out = np.empty((h, half, 2, 3), np.uint8)
    for k, idx in enumerate(y_idx):
        luma = 298 * (quads[:, :, idx].astype(np.int32) - 16)
        for c, term in enumerate(chroma):
            value = luma + term
            value >>= 8
            out[:, :, k, c] = np.clip(value, 0, 255, out=value)
    return out.reshape(h, half * 2, 3)


class DecodedImage(NamedTuple):
    """A decoded image and the size it was sent at: a JPEG decoded at a reduced scale has
    fewer pixels than its ``source_size``, in whose pixels boxes are reported."""

    rgb: np.ndarray
    #: (width, height) of the image as encoded.
    source_size: tuple[int, int]


#: DCT scale-down factor -> OpenCV flag (libjpeg decodes 1/2, 1/4, 1/8 inside the IDCT).
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def jpeg_reduction(width: int, height: int, max_pixels: int) -> int:
    """The DCT scale-down (8, 4, 2 or 1) to decode a ``width`` x ``height`` JPEG with: the
    largest whose result (libjpeg rounds each side up) still has at least ``max_pixels``
    pixels, so the resize to ``max_pixels`` that follows loses no detail it would have kept.
    1 when the image is within ``max_pixels`` or ``max_pixels`` <= 0 (no limit)."""
    if max_pixels <= 0 or width * height <= max_pixels:
        return 1
    for factor in (8, 4, 2):
        if -(-width // factor) * -(-height // factor) >= max_pixels:
            return factor
    return 1


def compressed_to_rgb(fmt: str, data) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` as an RGB array at full size (see
    :func:`decode_compressed`)."""
    return decode_compressed(fmt, data).rgb


def decode_compressed(fmt: str, data, max_pixels: int = 0) -> DecodedImage:
    """A ``sensor_msgs/CompressedImage`` as RGB: jpeg or png with format strings such as
    ``"jpeg"`` or ``"bgr8; jpeg compressed bgr8"`` (the decoder reads the colour order from
    the file, so ``bgr8`` needs no swap), and ``"16UC1; compressedDepth png"`` from
    compressed_depth_image_transport (stretched like raw ``16UC1``). A JPEG with more than
    ``max_pixels`` pixels is decoded at a reduced scale (:func:`jpeg_reduction`): the grounder
    would shrink it anyway, and the scaled IDCT saves part of the decode."""
    kind = fmt.lower()
    if fmt and not any(k in kind for k in ("jpeg", "jpg", "png")):
        raise _invalid(f"unsupported compressed format {fmt!r} (jpeg or png)")
    raw = _buffer(data).tobytes()
    if not raw:
        raise _invalid("compressed image is empty")
    depth = "compresseddepth" in kind
    if depth and raw[_DEPTH_HEADER : _DEPTH_HEADER + 8] == _PNG_SIGNATURE:
        raw = raw[_DEPTH_HEADER:]
    what = f"compressed image ({fmt or 'unknown format'})"
    if not depth:
        fast = _decode_bgr_view(raw, what, max_pixels)
        if fast is not None:
            return fast
    rgb = _decode(io.BytesIO(raw), what, depth)
    return DecodedImage(rgb, (rgb.shape[1], rgb.shape[0]))


def _decode_bgr_view(raw: bytes, what: str, max_pixels: int) -> DecodedImage | None:
    """8-bit JPEG/PNG decoded by OpenCV into one BGR buffer, returned as its reversed-channel
    RGB view (as raw ``bgr8`` is): one frame-sized write instead of Pillow's decode buffer,
    RGB conversion and copy to numpy. The size is checked from the header first (Pillow reads
    only the header here); a JPEG over ``max_pixels`` is decoded reduced. None for what OpenCV
    should not decode (16-bit, odd modes)."""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            w, h = img.size
            mode, is_jpeg = img.mode, img.format == "JPEG"
    except Exception:  # noqa: BLE001 - undecodable: the Pillow path names the error
        return None
    _check_decoded_size(w, h, what)
    if mode not in ("RGB", "L", "P", "RGBA", "LA"):
        return None
    factor = jpeg_reduction(w, h, max_pixels) if is_jpeg else 1
    flags = _REDUCED_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION  # as Pillow: no EXIF turn
    bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), flags)
    if bgr is None or bgr.shape[:2] != (-(-h // factor), -(-w // factor)):
        return None
    return DecodedImage(bgr[:, :, ::-1], (w, h))


def _check_decoded_size(w: int, h: int, what: str) -> None:
    """Refuse a decode bomb from its header, before any pixel is decoded."""
    if w * h > MAX_DECODED_PIXELS:
        raise _invalid(f"{what} is {w}x{h}: larger than {MAX_DECODED_PIXELS} pixels")


def _decode(source, what: str, depth: bool = False) -> np.ndarray:
    """Decode with Pillow, checking the header size before any pixel is decoded."""
    try:
        with Image.open(source) as img:
            _check_decoded_size(*img.size, what)
            if img.mode.startswith("I;16"):  # convert("RGB") would clip 16-bit grey
                grey16 = np.asarray(img)
                grey = _depth_to_8bit(grey16) if depth else (grey16 >> 8).astype(np.uint8)
                return _grey_to_rgb(grey)
            return np.asarray(img.convert("RGB"))
    except GroundingError:
        raise
    except Exception as err:  # Pillow raises many types (OSError, SyntaxError, ...) on bad data
        raise _invalid(f"cannot decode {what}: {type(err).__name__}: {err}") from err


def load_image_file(path: str | Path) -> np.ndarray:
    """An image file as RGB (``invalid_input`` when missing or undecodable)."""
    p = Path(path)
    if not p.is_file():
        raise _invalid(f"image file not found: {p}")
    return _decode(p, f"image file {p}")


def read_image_file(path: str | Path) -> tuple[np.ndarray, EncodedImage | None]:
    """An image file as RGB, and its own bytes when they can be sent as they are (see
    :func:`encoded_as_is`); ``invalid_input`` when missing or undecodable."""
    p = Path(path)
    if not p.is_file():
        raise _invalid(f"image file not found: {p}")
    data = p.read_bytes()
    return _decode(io.BytesIO(data), f"image file {p}"), encoded_as_is(data)


def encoded_as_is(data) -> EncodedImage | None:
    """JPEG or PNG bytes that a server may be sent unchanged, as the EGM authors send their
    files. None for anything else, for 16-bit or float pixels (decoded differently here and
    there), and for an EXIF orientation: vLLM turns such images upright, and the boxes are
    measured in the pixels as stored."""
    raw = data if isinstance(data, bytes) else _buffer(data).tobytes()
    if raw.startswith(_JPEG_SIGNATURE):
        mime = "image/jpeg"
    elif raw.startswith(_PNG_SIGNATURE):
        mime = "image/png"
    else:
        return None
    try:
        with Image.open(io.BytesIO(raw)) as img:  # the header only
            if img.mode not in _PLAIN_MODES:
                return None
            if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                return None
    except Exception:  # noqa: BLE001 - not decodable: the decoder reports it
        return None
    return EncodedImage(raw, mime)


def limit_pixels(rgb: np.ndarray, max_pixels: int) -> np.ndarray:
    """The resize policy before inference: downscale (keeping the aspect ratio as far as
    whole pixels allow) so that height x width <= ``max_pixels``; the same object when
    already small enough or when ``max_pixels`` <= 0."""
    h, w = rgb.shape[:2]
    if max_pixels <= 0 or h * w <= max_pixels:
        return rgb
    scale = (max_pixels / float(h * w)) ** 0.5
    new_w, new_h = max(1, int(w * scale)), max(1, int(h * scale))
    if new_w * new_h > max_pixels:  # a thin image held at 1 pixel: the long side gives way
        if new_w <= new_h:
            new_h = max_pixels // new_w
        else:
            new_w = max_pixels // new_h
    return resize_rgb(rgb, new_w, new_h)


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Downscale with OpenCV in two steps: area averaging by the whole factor (OpenCV's fast
    integer path), then bilinear for the rest (a factor under 2, where bilinear does not
    alias). About 1 ms for 1920x1080 -> 1335x751 here, against 12 ms for Pillow's BOX.
    A reversed-channel view (bgr8) is resized as the BGR array under it, so the full frame is
    never copied: only the small result is flipped back."""
    flipped = not rgb.flags.c_contiguous and rgb.strides[2] < 0
    src = rgb[:, :, ::-1] if flipped else rgb
    if not src.flags.c_contiguous:
        src = contiguous_rgb(src)
    h, w = src.shape[:2]
    factor = min(w // max(1, width), h // max(1, height))
    if factor >= 2:
        src = cv2.resize(src, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    if src.shape[1] != width or src.shape[0] != height:
        src = cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(src, cv2.COLOR_BGR2RGB) if flipped else src  # SIMD, not numpy


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes through OpenCV's libjpeg-turbo (accepts non-contiguous views such as the
    bgr8 view: OpenCV wants BGR, so that view's base is encoded as it is)."""
    flipped = not rgb.flags.c_contiguous and rgb.strides[2] < 0
    bgr = rgb[:, :, ::-1] if flipped else cv2.cvtColor(contiguous_rgb(rgb), cv2.COLOR_RGB2BGR)
    if not bgr.flags.c_contiguous:
        bgr = contiguous_rgb(bgr)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {rgb.shape} image")
    return buf.tobytes()


def data_url(rgb: np.ndarray, quality: int = 90, encoded: EncodedImage | None = None) -> str:
    """A base64 data URL, as the EGM authors send images to vLLM: ``encoded``'s own bytes
    when given, else ``rgb`` as JPEG. (Their script labels every file ``image/jpeg``; vLLM
    ignores the label and decodes what the bytes are, so the true type is given here.)"""
    if encoded is not None:
        return f"data:{encoded.mime};base64," + base64.b64encode(encoded.data).decode()
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(rgb, quality)).decode()


def rgb_to_image_fields(
    rgb: np.ndarray, encoding: str = "rgb8", big_endian: bool = False, padding: int = 0
) -> dict:
    """The reverse of :func:`image_to_rgb`: ``sensor_msgs/Image`` fields for tests, the
    simulated camera and benchmarks. Grey encodings get the BT.601 luma (x 257 for 16-bit);
    ``padding`` zero bytes are appended to every row (``step`` grows accordingly)."""
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
        pixels = (grey.astype(np.uint16) * 257).astype(">u2" if big_endian else "<u2")
    elif encoding in _YUV422:
        pixels = _rgb_to_yuv422(rgb, uyvy=encoding in _UYVY)
    else:
        raise ValueError(f"cannot encode {encoding!r}")
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(h, -1)
    if padding > 0:
        rows = np.hstack([rows, np.zeros((h, padding), np.uint8)])
    return {
        "encoding": encoding,
        "width": w,
        "height": h,
        "step": rows.shape[1],
        "data": rows.tobytes(),
        "is_bigendian": big_endian and encoding in ("mono16", "16UC1"),
    }


def _rgb_to_yuv422(rgb: np.ndarray, uyvy: bool) -> np.ndarray:
    """BT.601 limited range; each pixel pair shares the mean of its chroma."""
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
