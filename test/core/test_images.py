"""Image conversion: every encoding, padding, endianness, zero-copy where promised, clear
errors for bad input, compressed images, the resize policy, and fuzzing with arbitrary fields."""

from __future__ import annotations

import array
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from egm_ros.core.images import (
    ENCODINGS,
    compressed_to_rgb,
    data_url,
    encode_jpeg,
    image_to_rgb,
    limit_pixels,
    load_image_file,
    rgb_to_image_fields,
)
from egm_ros.core.types import GroundingError, Status

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
GREY = (RGB.astype(np.float32) @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)


def convert(fields: dict) -> np.ndarray:
    return image_to_rgb(
        fields["encoding"],
        fields["width"],
        fields["height"],
        fields["step"],
        fields["data"],
        fields["is_bigendian"],
    )


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "8UC3"])
def test_colour_encodings_round_trip_exactly(encoding: str) -> None:
    assert np.array_equal(convert(rgb_to_image_fields(RGB, encoding)), RGB)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1", "mono16"])
def test_grey_encodings_give_grey_rgb(encoding: str) -> None:
    out = convert(rgb_to_image_fields(RGB, encoding))
    assert out.shape == (6, 8, 3)
    assert np.array_equal(out[:, :, 0], GREY) and np.array_equal(out[:, :, 2], GREY)


def test_depth_16uc1_is_stretched_over_its_valid_range() -> None:
    depth = np.array([[0, 1000], [2000, 3000]], dtype="<u2")
    out = image_to_rgb("16UC1", 2, 2, 4, depth.tobytes())
    assert out[:, :, 0].tolist() == [[0, 0], [127, 255]]


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_round_trips_within_tolerance(encoding: str) -> None:
    smooth = np.repeat(RGB[:, ::2], 2, axis=1)  # chroma is shared by pixel pairs
    out = convert(rgb_to_image_fields(smooth, encoding))
    assert np.abs(out.astype(int) - smooth.astype(int)).max() <= 4


def test_row_padding_and_big_endian() -> None:
    step = 8 * 3 + 5
    padded = np.zeros((6, step), np.uint8)
    padded[:, : 8 * 3] = RGB.reshape(6, -1)
    assert np.array_equal(image_to_rgb("rgb8", 8, 6, step, padded.tobytes()), RGB)
    value = np.array([[0x1234, 0xFF00]], dtype=">u2")
    out = image_to_rgb("mono16", 2, 1, 4, value.tobytes(), is_bigendian=True)
    assert out[0, :, 0].tolist() == [0x12, 0xFF]
    odd_step = image_to_rgb("mono16", 2, 1, 5, value.tobytes() + b"\0", is_bigendian=True)
    assert odd_step[0, :, 0].tolist() == [0x12, 0xFF]


def test_rgb8_from_array_array_is_a_view_without_copy() -> None:
    buf = array.array("B", RGB.tobytes())
    out = image_to_rgb("rgb8", 8, 6, 24, buf)
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))
    assert np.array_equal(out, RGB)
    bgr = rgb_to_image_fields(RGB, "bgr8")
    source = np.frombuffer(bgr["data"], np.uint8)
    assert np.shares_memory(convert(bgr), source)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("bayer_rggb8", 8, 6, 8, bytes(48)), "unsupported image encoding 'bayer_rggb8'"),
        (("rgb8", 8, 6, 24, bytes(100)), "has 100 bytes"),
        (("rgb8", 8, 6, 20, bytes(200)), "step 20 is smaller"),
        (("rgb8", 0, 6, 0, b""), "out of range"),
        (("rgb8", 100000, 1, 300000, bytes(10)), "out of range"),
        (("yuv422", 7, 2, 14, bytes(28)), "even width"),
        (("rgb8", 2, 2, 6, "not bytes"), "not a byte buffer"),
    ],
)
def test_bad_raw_images_are_invalid_input(args, words: str) -> None:
    with pytest.raises(GroundingError) as info:
        image_to_rgb(*args)
    assert info.value.status is Status.INVALID_INPUT
    assert words in info.value.message


@pytest.mark.parametrize(("fmt", "pil"), [("jpeg", "JPEG"), ("bgr8; png compressed bgr8", "PNG")])
def test_compressed_images(fmt: str, pil: str) -> None:
    y, x = np.mgrid[0:48, 0:64]
    smooth = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(smooth).save(buf, format=pil, quality=95)
    out = compressed_to_rgb(fmt, buf.getvalue())
    assert out.shape == smooth.shape
    error = np.abs(out.astype(int) - smooth.astype(int))
    assert error.max() == 0 if pil == "PNG" else error.mean() < 3


@pytest.mark.parametrize(
    ("fmt", "data", "words"),
    [
        ("jpeg", b"\xff\xd8 definitely not a jpeg", "cannot decode"),
        ("jpeg", b"", "empty"),
        ("tiff", b"II*\x00", "unsupported compressed format"),
    ],
)
def test_bad_compressed_images(fmt: str, data: bytes, words: str) -> None:
    with pytest.raises(GroundingError, match=words):
        compressed_to_rgb(fmt, data)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("L", (9000, 8000)).save(buf, format="PNG")
    with pytest.raises(GroundingError, match="larger than"):
        compressed_to_rgb("png", buf.getvalue())


def test_limit_pixels() -> None:
    big = np.zeros((2160, 3840, 3), np.uint8)
    small = limit_pixels(big, 1_003_520)
    assert small.shape[0] * small.shape[1] <= 1_003_520
    assert abs(small.shape[1] / small.shape[0] - 3840 / 2160) < 0.01
    assert limit_pixels(RGB, 1_003_520) is RGB
    assert limit_pixels(big, 0) is big


def test_jpeg_and_data_url_accept_views(tmp_path) -> None:
    view = RGB[:, :, ::-1]
    assert encode_jpeg(view)[:2] == b"\xff\xd8"
    assert data_url(view).startswith("data:image/jpeg;base64,/9j/")
    path = tmp_path / "x.png"
    Image.fromarray(RGB).save(path)
    assert np.array_equal(load_image_file(path), RGB)
    with pytest.raises(GroundingError, match="not found"):
        load_image_file(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(GroundingError, match="cannot decode"):
        load_image_file(tmp_path / "bad.png")


@settings(max_examples=300, deadline=None)
@given(
    encoding=st.sampled_from([*ENCODINGS, "bayer", ""]),
    width=st.integers(-5, 70000),
    height=st.integers(-5, 70000),
    step=st.integers(-5, 1 << 20),
    data=st.binary(max_size=4096),
    big=st.booleans(),
)
def test_fuzz_raw_fields_never_raise_anything_else(
    encoding, width, height, step, data, big
) -> None:
    try:
        out = image_to_rgb(encoding, width, height, step, data, big)
    except GroundingError as err:
        assert err.status is Status.INVALID_INPUT
        return
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    assert width * height * 3 <= 3 * len(data) + 3  # never sized beyond what the data holds


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2048), fmt=st.sampled_from(["jpeg", "png", "", "rgb8; jpeg"]))
def test_fuzz_compressed_bytes(data: bytes, fmt: str) -> None:
    try:
        out = compressed_to_rgb(fmt, data)
    except GroundingError as err:
        assert err.status is Status.INVALID_INPUT
        return
    assert out.ndim == 3 and out.shape[2] == 3
