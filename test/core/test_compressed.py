"""Compressed frames and image files (egm_ros.core.compressed): JPEG, PNG and compressed
depth, header checks before decoding, reduced-scale JPEG decoding, the bytes that go out as they
are, and fuzzing with arbitrary and corrupted bytes."""

from __future__ import annotations

import array
import base64
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from egm_ros.core import compressed
from egm_ros.core.compressed import (
    compressed_to_rgb,
    decode_compressed,
    encoded_as_is,
    jpeg_reduction,
    load_image_file,
    read_image_file,
)
from egm_ros.core.images import data_url, encode_jpeg
from egm_ros.core.types import GroundingError, Status

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)


def _encode(rgb: np.ndarray, pil: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=pil, quality=95)
    return buf.getvalue()


GRADIENT = np.stack(
    [np.mgrid[0:48, 0:64][1] * 4, np.mgrid[0:48, 0:64][0] * 5, sum(np.mgrid[0:48, 0:64]) * 2],
    axis=-1,
).astype(np.uint8)


@pytest.mark.parametrize(
    ("fmt", "pil"),
    [
        ("jpeg", "JPEG"),
        ("rgb8; jpeg compressed bgr8", "JPEG"),
        ("png", "PNG"),
        ("bgr8; png compressed bgr8", "PNG"),
        ("", "PNG"),
    ],
)
def test_compressed_images(fmt: str, pil: str) -> None:
    out = compressed_to_rgb(fmt, _encode(GRADIENT, pil))
    assert out.shape == GRADIENT.shape
    error = np.abs(out.astype(int) - GRADIENT.astype(int))
    assert error.max() == 0 if pil == "PNG" else error.mean() < 3


def test_16_bit_png_is_scaled_not_clipped() -> None:
    grey16 = np.array([[0, 1000, 40000, 65535]], dtype=np.uint16)
    png = _encode(grey16, "PNG")
    assert compressed_to_rgb("mono16; png compressed", png)[0, :, 0].tolist() == [0, 3, 156, 255]
    depth = compressed_to_rgb("16UC1; compressedDepth png", bytes(12) + png)
    assert depth[0, :, 0].tolist() == [0, 0, 154, 255]  # stretched over 1000..65535


@pytest.mark.parametrize(
    ("fmt", "data", "words"),
    [
        ("jpeg", b"\xff\xd8 definitely not a jpeg", "cannot decode"),
        ("png", _encode(GRADIENT, "PNG")[:60], "cannot decode"),
        ("jpeg", b"", "empty"),
        ("tiff", b"II*\x00", "unsupported compressed format 'tiff'"),
    ],
)
def test_bad_compressed_images(fmt: str, data: bytes, words: str) -> None:
    with pytest.raises(GroundingError, match=words) as info:
        compressed_to_rgb(fmt, data)
    assert info.value.status is Status.INVALID_INPUT


def test_corrupted_png_chunks_are_invalid_input() -> None:
    # Pillow raises SyntaxError ("broken PNG file") for some corruptions, not OSError.
    data = bytearray(_encode(GRADIENT, "PNG"))
    for offset in range(8, len(data)):
        broken = bytearray(data)
        broken[offset] ^= 0x55
        try:
            compressed_to_rgb("png", bytes(broken))
        except GroundingError as err:
            assert err.status is Status.INVALID_INPUT


def test_decompression_bomb_is_refused_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("1", (9000, 8000)).save(buf, format="PNG")
    with pytest.raises(GroundingError, match="9000x8000: larger than"):
        compressed_to_rgb("png", buf.getvalue())


@pytest.mark.parametrize(
    ("width", "height", "max_pixels", "factor"),
    [
        (1920, 1080, 1280 * 28 * 28, 1),  # 960 x 540 would be fewer than max_pixels
        (3840, 2160, 1280 * 28 * 28, 2),  # 1920 x 1080 keeps them, 960 x 540 does not
        (640, 480, 224 * 224, 2),  # 320 x 240 = 76,800 >= 50,176 > 160 x 120
        (4000, 3000, 100_000, 8),  # 500 x 375 = 187,500
        (640, 480, 640 * 480, 1),  # within the limit: never reduced
        (640, 480, 0, 1),  # no limit
        (1001, 757, 251 * 190, 4),  # libjpeg rounds up: 1001/4 -> 251, 757/4 -> 190
        (1001, 757, 251 * 190 + 1, 2),
    ],
)
def test_jpeg_reduction_is_the_largest_that_keeps_max_pixels(
    width: int, height: int, max_pixels: int, factor: int
) -> None:
    assert jpeg_reduction(width, height, max_pixels) == factor


def _rectangle_jpeg(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    rgb = np.full((height, width, 3), 40, np.uint8)
    x1, y1, x2, y2 = box
    rgb[y1:y2, x1:x2] = (250, 200, 30)
    return _encode(rgb, "JPEG")


def _bright(rgb: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(rgb[:, :, 0] > 145)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize(("width", "height"), [(1600, 1200), (1601, 1203)])
def test_a_jpeg_over_max_pixels_is_decoded_reduced_with_its_source_size(
    width: int, height: int
) -> None:
    data = _rectangle_jpeg(width, height, (400, 304, 800, 904))
    out = decode_compressed("jpeg", data, max_pixels=400_000)
    assert out.source_size == (width, height)
    assert out.rgb.shape == (-(-height // 2), -(-width // 2), 3)  # 1/2: 1/4 keeps < 400,000
    assert _bright(out.rgb) == (200, 152, 400, 452)  # the same picture at half the scale
    assert out.rgb.base is not None and out.rgb.base.nbytes == out.rgb.nbytes  # one buffer
    full = decode_compressed("jpeg", data)  # no limit: full size
    assert full.rgb.shape == (height, width, 3) and full.source_size == (width, height)


def test_png_and_small_jpegs_are_never_reduced() -> None:
    png = _encode(np.zeros((600, 800, 3), np.uint8), "PNG")
    out = decode_compressed("png", png, max_pixels=10_000)
    assert out.rgb.shape == (600, 800, 3) and out.source_size == (800, 600)
    small = decode_compressed("jpeg", _encode(GRADIENT, "JPEG"), max_pixels=64 * 48)
    assert small.rgb.shape == GRADIENT.shape


def _claims_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its SOF0 header claiming another size (the scan data stays small)."""
    sof = jpeg.index(b"\xff\xc0")
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return jpeg[: sof + 5] + size + jpeg[sof + 9 :]


def test_the_header_size_check_comes_before_a_reduced_decode(monkeypatch) -> None:
    def no_decode(*args):
        raise AssertionError("decoded before the size check")

    monkeypatch.setattr(compressed.cv2, "imdecode", no_decode)
    bomb = _claims_size(_encode(GRADIENT, "JPEG"), 10000, 8000)
    with pytest.raises(GroundingError, match="10000x8000: larger than") as info:
        decode_compressed("jpeg", bomb, max_pixels=100_000)
    assert info.value.status is Status.INVALID_INPUT


@pytest.mark.parametrize("cut", [0.0, 0.5, 0.9])
def test_broken_jpegs_decoded_reduced_are_still_invalid_input(cut: float) -> None:
    data = _rectangle_jpeg(1600, 1200, (400, 300, 800, 900))
    # cut 0: a JPEG signature and nothing else; otherwise the file cut short in its scan data
    broken = data[: int(len(data) * cut)] if cut else b"\xff\xd8\xff" + bytes(200)
    with pytest.raises(GroundingError) as info:
        decode_compressed("jpeg", broken, max_pixels=400_000)
    assert info.value.status is Status.INVALID_INPUT


def test_load_image_file(tmp_path) -> None:
    path = tmp_path / "x.png"
    Image.fromarray(RGB).save(path)
    assert np.array_equal(load_image_file(path), RGB)
    Image.fromarray(RGB).convert("RGBA").save(tmp_path / "a.png")
    assert np.array_equal(load_image_file(str(tmp_path / "a.png")), RGB)
    with pytest.raises(GroundingError, match="not found") as info:
        load_image_file(tmp_path / "missing.png")
    assert info.value.status is Status.INVALID_INPUT
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(GroundingError, match="cannot decode"):
        load_image_file(tmp_path / "bad.png")
    with pytest.raises(GroundingError, match="not found"):
        load_image_file(tmp_path)  # a folder is not an image


def _file_bytes(fmt: str, mode: str = "RGB", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RGB).convert(mode).save(buf, fmt, **save)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "mime"), [("JPEG", "image/jpeg"), ("PNG", "image/png")])
def test_read_image_file_keeps_the_files_own_bytes(tmp_path, fmt: str, mime: str) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(_file_bytes(fmt))
    rgb, encoded = read_image_file(path)
    assert np.array_equal(rgb, load_image_file(path))
    assert encoded is not None and encoded.mime == mime
    assert encoded.data == path.read_bytes()  # the bytes as stored, not re-encoded
    url = data_url(rgb, encoded=encoded)
    assert url == f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()
    assert data_url(rgb).startswith("data:image/jpeg;base64,") and data_url(rgb) != url


def test_only_plain_jpeg_and_png_go_out_as_they_are() -> None:
    assert encoded_as_is(array.array("B", _file_bytes("JPEG"))).mime == "image/jpeg"
    assert encoded_as_is(memoryview(_file_bytes("PNG"))).mime == "image/png"
    assert encoded_as_is(_file_bytes("BMP")) is None  # a server may not take it
    assert encoded_as_is(b"\xff\xd8\xff not a jpeg") is None
    assert encoded_as_is(b"") is None
    sixteen = io.BytesIO()
    Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(sixteen, "PNG")
    assert encoded_as_is(sixteen.getvalue()) is None  # 16-bit: stretched here, not there
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: vLLM would turn it, the boxes are in stored pixels
    assert encoded_as_is(_file_bytes("JPEG", exif=exif)) is None
    exif[0x0112] = 1
    assert encoded_as_is(_file_bytes("JPEG", exif=exif)) is not None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_only_whole_files_go_out_as_they_are_with_their_header_size(fmt: str) -> None:
    """A frame cut off in transit is decoded here (which reports it) instead of being sent to
    a server undecoded; zero padding after the end is a whole file still."""
    data = _file_bytes(fmt)
    assert encoded_as_is(data).size == (8, 6)
    assert encoded_as_is(data + b"\0" * 7).size == (8, 6)
    for cut in (len(data) // 2, len(data) - 1):
        assert encoded_as_is(data[:cut]) is None


def test_a_compressed_depth_frame_is_never_forwarded() -> None:
    png = _file_bytes("PNG", "L")
    assert encoded_as_is(png) is not None
    assert encoded_as_is(b"\0" * 12 + png) is None  # compressedDepth's config header first


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2048), fmt=st.sampled_from(["jpeg", "png", "", "rgb8; jpeg"]))
def test_fuzz_compressed_bytes(data: bytes, fmt: str) -> None:
    try:
        out = compressed_to_rgb(fmt, data)
    except GroundingError as err:
        assert err.status is Status.INVALID_INPUT
        return
    assert out.ndim == 3 and out.shape[2] == 3


@settings(max_examples=150, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=6))
def test_fuzz_corrupted_real_images(flips) -> None:
    for blob in (_encode(GRADIENT, "PNG"), _encode(GRADIENT, "JPEG")):
        broken = bytearray(blob)
        for offset, xor in flips:
            broken[offset % len(broken)] ^= xor
        try:
            compressed_to_rgb("", bytes(broken))
        except GroundingError as err:
            assert err.status is Status.INVALID_INPUT


def test_compressed_decode_is_one_frame_buffer_seen_as_rgb() -> None:
    """JPEG/PNG messages decode into one BGR buffer viewed as RGB (no further full-frame copy),
    with the same pixels Pillow gives."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for fmt in ("png", "jpeg"):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt.upper())
        out = compressed_to_rgb(fmt, buf.getvalue())
        reference = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        assert out.shape == (48, 64, 3)
        assert out.base is not None and out.base.nbytes == out.nbytes  # a view on one buffer
        assert np.abs(out.astype(int) - reference).max() <= (0 if fmt == "png" else 2)


def test_jpeg_and_data_url_accept_views(tmp_path) -> None:
    view = RGB[:, :, ::-1]
    assert encode_jpeg(view)[:2] == b"\xff\xd8"
    assert data_url(view).startswith("data:image/jpeg;base64,/9j/")
    pairs = np.repeat(GRADIENT[:, ::2], 2, axis=1)  # equal pairs: what 4:2:2 keeps exactly
    decoded = compressed_to_rgb("jpeg", encode_jpeg(pairs[:, :, ::-1], 95))
    assert np.abs(decoded.astype(int) - GRADIENT[:, :, ::-1]).mean() < 4
