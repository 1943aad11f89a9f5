"""Compressed camera frames (``sensor_msgs/CompressedImage``: JPEG, PNG, compressed depth) and
image files to RGB, and the bytes that may go to a server as they are.

A decode bomb is refused from the header, before any pixel is decoded; a JPEG with more pixels
than the engine will use is decoded at a reduced scale inside the IDCT. Raw encodings, the
resize policy and encoding for the engines are :mod:`egm_ros.core.images`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from egm_ros.core.engine import EncodedImage
from egm_ros.core.images import _buffer, _depth_to_8bit, _grey_to_rgb, _invalid
from egm_ros.core.types import GroundingError

#: Compressed images larger than this many pixels are refused before decoding.
MAX_DECODED_PIXELS = 8192 * 8192
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
#: How a whole file ends: JPEG's EOI marker, PNG's IEND chunk with its CRC.
_JPEG_END = b"\xff\xd9"
_PNG_END = b"IEND\xaeB`\x82"
#: Pixel modes a server decodes as we do (16-bit and float images we stretch, it would not).
_PLAIN_MODES = ("RGB", "L", "P", "RGBA", "LA", "CMYK", "YCbCr")
_EXIF_ORIENTATION = 0x0112
#: compressed_depth_image_transport puts a 12-byte config header before the PNG.
_DEPTH_HEADER = 12


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
    files, with their size from the header. None for anything else, for 16-bit or float pixels
    (decoded differently here and there), for an EXIF orientation (vLLM turns such images
    upright, and the boxes are measured in the pixels as stored), for a file that does not end
    as its format ends (cut off in transit: decoding it here reports that) and for a size over
    :data:`MAX_DECODED_PIXELS`."""
    raw = data if isinstance(data, bytes) else _buffer(data).tobytes()
    if raw.startswith(_JPEG_SIGNATURE):
        mime, end = "image/jpeg", _JPEG_END
    elif raw.startswith(_PNG_SIGNATURE):
        mime, end = "image/png", _PNG_END
    else:
        return None
    if not raw[-64:].rstrip(b"\0").endswith(end):  # the tail only: no copy of a 4K frame
        return None
    try:
        with Image.open(io.BytesIO(raw)) as img:  # the header only
            if img.mode not in _PLAIN_MODES or img.width * img.height > MAX_DECODED_PIXELS:
                return None
            if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                return None
            size = img.size
    except Exception:  # noqa: BLE001 - not decodable: the decoder reports it
        return None
    return EncodedImage(raw, mime, size)
