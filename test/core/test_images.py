"""Image conversion: every encoding, padding, endianness, zero-copy where promised, clear
errors for bad input, compressed images, the resize policy, and fuzzing with arbitrary fields."""

from __future__ import annotations

import array
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egm_ros.core.images import (
    ENCODINGS,
    contiguous_rgb,
    effective_max_pixels,
    image_to_rgb,
    limit_pixels,
    rgb_to_image_fields,
)
from egm_ros.core.types import GroundingError, Status

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
GREY = (RGB.astype(np.float32) @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
LOSSLESS = ["rgb8", "bgr8", "rgba8", "bgra8", "8UC3"]
YUV = ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"]
VIEWS = ["rgb8", "8UC3", "bgr8", "rgba8", "bgra8"]


def convert(fields: dict, data=None) -> np.ndarray:
    return image_to_rgb(
        fields["encoding"],
        fields["width"],
        fields["height"],
        fields["step"],
        fields["data"] if data is None else data,
        fields["is_bigendian"],
    )


def smooth_pairs(rgb: np.ndarray) -> np.ndarray:
    """Pixel pairs with equal colour: what 4:2:2 chroma subsampling keeps exactly."""
    return np.repeat(rgb[:, ::2], 2, axis=1)


@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("encoding", LOSSLESS)
def test_colour_encodings_round_trip_exactly(encoding: str, padding: int) -> None:
    fields = rgb_to_image_fields(RGB, encoding, padding=padding)
    assert fields["step"] == 8 * ENCODINGS[encoding][0] + padding
    assert np.array_equal(convert(fields), RGB)


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("encoding", ["mono8", "8UC1", "mono16"])
def test_grey_encodings_give_grey_rgb(encoding: str, big_endian: bool, padding: int) -> None:
    fields = rgb_to_image_fields(RGB, encoding, big_endian=big_endian, padding=padding)
    out = convert(fields)
    assert out.shape == (6, 8, 3) and out.flags.c_contiguous
    for c in range(3):
        assert np.array_equal(out[:, :, c], GREY)


def test_big_endian_16_bit_reads_the_high_byte_first() -> None:
    value = np.array([[0x1234, 0xFF00]], dtype=">u2")
    out = image_to_rgb("mono16", 2, 1, 4, value.tobytes(), is_bigendian=True)
    assert out[0, :, 0].tolist() == [0x12, 0xFF]
    little = image_to_rgb("mono16", 2, 1, 4, value.tobytes(), is_bigendian=False)
    assert little[0, :, 0].tolist() == [0x34, 0x00]
    odd_step = image_to_rgb("mono16", 2, 1, 5, value.tobytes() + b"\0", is_bigendian=True)
    assert odd_step[0, :, 0].tolist() == [0x12, 0xFF]


def test_depth_16uc1_is_stretched_over_its_valid_range() -> None:
    depth = np.array([[0, 1000], [2000, 3000]], dtype="<u2")
    out = image_to_rgb("16UC1", 2, 2, 4, depth.tobytes())
    assert out[:, :, 0].tolist() == [[0, 0], [127, 255]]
    flat = np.array([[0, 500, 500]], dtype="<u2")
    assert image_to_rgb("16UC1", 3, 1, 6, flat.tobytes())[0, :, 0].tolist() == [0, 255, 255]
    assert not image_to_rgb("16UC1", 2, 1, 4, bytes(4)).any()


@pytest.mark.parametrize("padding", [0, 6])
@pytest.mark.parametrize("encoding", YUV)
def test_yuv422_round_trips_within_tolerance(encoding: str, padding: int) -> None:
    smooth = smooth_pairs(RGB)
    out = convert(rgb_to_image_fields(smooth, encoding, padding=padding))
    assert np.abs(out.astype(int) - smooth.astype(int)).max() <= 3


def test_yuv422_byte_order_and_bt601_reference_colours() -> None:
    # BT.601 limited range: Y=81,U=90,V=240 is pure red; Y=16 black; Y=235 white.
    uyvy = bytes([90, 81, 240, 81, 128, 16, 128, 235])
    yuyv = bytes([81, 90, 81, 240, 16, 128, 235, 128])
    expected = [[255, 0, 0], [255, 0, 0], [0, 0, 0], [255, 255, 255]]
    for encoding, data in (("uyvy", uyvy), ("yuv422_yuy2", yuyv)):
        out = image_to_rgb(encoding, 2, 2, 4, data)
        got = out.reshape(-1, 3).astype(int)
        assert np.abs(got - np.array(expected)).max() <= 2, (encoding, got.tolist())


@pytest.mark.parametrize("encoding", VIEWS)
def test_colour_encodings_are_views_on_array_array_input(encoding: str) -> None:
    fields = rgb_to_image_fields(RGB, encoding, padding=2)
    buf = array.array("B", fields["data"])  # what rclpy hands over for uint8[]
    out = convert(fields, buf)
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))
    assert np.array_equal(out, RGB)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, np.frombuffer])
def test_every_buffer_type_is_accepted(wrap) -> None:
    fields = rgb_to_image_fields(RGB, "bgr8")
    data = wrap(fields["data"], np.uint8) if wrap is np.frombuffer else wrap(fields["data"])
    assert np.array_equal(convert(fields, data), RGB)


def test_strided_numpy_data_is_read_in_logical_order() -> None:
    flat = np.arange(12, dtype=np.uint8)
    assert image_to_rgb("rgb8", 2, 1, 6, flat[::-1]).tolist() == [[[11, 10, 9], [8, 7, 6]]]
    assert image_to_rgb("rgb8", 2, 1, 6, flat[::2]).tolist() == [[[0, 2, 4], [6, 8, 10]]]
    words = np.array([0x1234, 0xFF00], np.uint16)  # a 16-bit array is read as its bytes
    assert image_to_rgb("mono16", 2, 1, 4, words)[0, :, 0].tolist() == [0x12, 0xFF]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("bayer_rggb8", 8, 6, 8, bytes(48)), "unsupported image encoding 'bayer_rggb8'"),
        (("bayer_rggb8", 8, 6, 8, bytes(48)), "rgb8"),  # lists the supported ones
        (("rgb8", 8, 6, 24, bytes(100)), "has 100 bytes"),
        (("rgb8", 8, 6, 24, bytes(100)), "needs step x height = 144"),
        (("rgb8", 8, 6, 24, bytes(143)), "needs step x height = 144"),
        (("rgb8", 8, 6, 20, bytes(200)), "step 20 is smaller than width 8 x 3 bytes = 24"),
        (("mono16", 8, 6, -1, bytes(200)), "step -1 is smaller"),
        (("rgb8", 0, 6, 0, b""), "out of range"),
        (("rgb8", 4, -2, 12, b""), "out of range"),
        (("rgb8", 100000, 1, 300000, bytes(10)), "out of range"),
        (("yuv422", 7, 2, 14, bytes(28)), "even width"),
        (("rgb8", 2, 2, 6, "not bytes"), "not a byte buffer"),
        (("rgb8", 1, 1, 3, np.array([1, 2, 3], dtype=object)), "not a byte buffer"),
    ],
)
def test_bad_raw_images_are_invalid_input(args, words: str) -> None:
    with pytest.raises(GroundingError) as info:
        image_to_rgb(*args)
    assert info.value.status is Status.INVALID_INPUT
    assert words in info.value.message


def test_absurd_sizes_are_refused_before_any_allocation() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(GroundingError, match="has 12 bytes"):
            image_to_rgb("rgb8", 16384, 16384, 16384 * 3, bytes(12))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_effective_max_pixels_is_the_smallest_real_limit() -> None:
    assert effective_max_pixels(224 * 224, 1_003_520) == 224 * 224
    assert effective_max_pixels(1_003_520, 20_000) == 20_000
    assert effective_max_pixels(None, 20_000) == effective_max_pixels(20_000, 0) == 20_000
    assert effective_max_pixels(None, 0) is None and effective_max_pixels() is None


def test_limit_pixels() -> None:
    big = np.zeros((2160, 3840, 3), np.uint8)
    small = limit_pixels(big, 1_003_520)
    assert small.shape[0] * small.shape[1] <= 1_003_520
    assert small.shape[0] * small.shape[1] > 0.99 * 1_003_520
    assert abs(small.shape[1] / small.shape[0] - 3840 / 2160) < 0.01
    assert limit_pixels(RGB, 1_003_520) is RGB
    assert limit_pixels(RGB, 48) is RGB
    assert limit_pixels(big, 0) is big
    assert limit_pixels(big, -5) is big


def test_limit_pixels_keeps_the_picture() -> None:
    left_red = np.zeros((100, 200, 3), np.uint8)
    left_red[:, :100, 0] = 255
    out = limit_pixels(left_red[:, :, ::-1], 5000)  # a non-contiguous view as input
    assert out.shape == (50, 100, 3)
    assert (out[:, :45, 2] == 255).all() and (out[:, 55:] == 0).all()


@settings(max_examples=100, deadline=None)
@given(h=st.integers(1, 1500), w=st.integers(1, 1500), max_pixels=st.integers(1, 2_000_000))
def test_limit_pixels_bound_holds_for_any_shape(h: int, w: int, max_pixels: int) -> None:
    rgb = np.zeros((h, w, 3), np.uint8)
    out = limit_pixels(rgb, max_pixels)
    if h * w <= max_pixels:
        assert out is rgb
        return
    oh, ow = out.shape[:2]
    assert 1 <= oh * ow <= max_pixels and out.shape[2] == 3
    if min(oh, ow) > 10:  # whole pixels: the aspect ratio can only be kept approximately
        assert abs(ow / oh - w / h) <= 0.1 * w / h


def test_contiguous_rgb() -> None:
    assert contiguous_rgb(RGB) is RGB
    view = RGB[:, :, ::-1]
    out = contiguous_rgb(view)
    assert out.flags.c_contiguous and np.array_equal(out, view)
    assert not np.shares_memory(out, RGB)


def test_rgb_to_image_fields_describes_its_buffer() -> None:
    fields = rgb_to_image_fields(RGB, "mono16", big_endian=True, padding=4)
    assert (fields["width"], fields["height"], fields["step"]) == (8, 6, 20)
    assert len(fields["data"]) == 120 and fields["is_bigendian"] is True
    assert rgb_to_image_fields(RGB, "rgb8", big_endian=True)["is_bigendian"] is False
    with pytest.raises(ValueError, match="cannot encode"):
        rgb_to_image_fields(RGB, "bayer_rggb8")


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
    tracemalloc.start()
    try:
        out = image_to_rgb(encoding, width, height, step, data, big)
    except GroundingError as err:
        assert err.status is Status.INVALID_INPUT
        return
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 64 * len(data) + (1 << 16)  # memory follows the data, not the fields
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    assert width * height <= len(data)
