"""The ROS boundary with hostile messages: whatever the size fields of a sensor_msgs/Image claim,
conversion allocates from the data that came, not from the fields, and fails only with
invalid_input."""

from __future__ import annotations

import tracemalloc

import pytest

pytest.importorskip("rclpy")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from egm_ros.core.images import ENCODINGS  # noqa: E402
from egm_ros.core.types import GroundingError, Status  # noqa: E402
from egm_ros.node.conversions import image_msg_to_rgb  # noqa: E402

pytestmark = pytest.mark.ros
UINT32 = st.integers(0, 2**32 - 1)


def convert_with_peak(msg) -> tuple[object, int]:
    """(the RGB array or the GroundingError, peak bytes allocated meanwhile)."""
    tracemalloc.start()
    try:
        try:
            out: object = image_msg_to_rgb(msg)
        except GroundingError as err:
            out = err
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


@pytest.mark.parametrize(
    ("height", "width", "step"),
    [
        (16384, 16384, 16384 * 4),  # a 1 GiB frame
        (16384, 4, 2**32 - 1),  # step x height = 70 TB
        (2**32 - 1, 2**32 - 1, 2**32 - 1),  # every field at its maximum
    ],
)
def test_size_fields_claiming_gigabytes_are_refused_before_allocating(height, width, step):
    msg = Image(height=height, width=width, encoding="rgba8", step=step)
    msg.data = bytes(64)
    out, peak = convert_with_peak(msg)
    assert isinstance(out, GroundingError) and out.status is Status.INVALID_INPUT
    assert str(height) in out.message or str(width) in out.message
    assert peak < 1 << 20


@settings(max_examples=200, deadline=None)
@given(
    encoding=st.sampled_from([*ENCODINGS, "bayer_rggb8", "", "rgb8\x00"]),
    height=st.one_of(st.integers(0, 64), UINT32),
    width=st.one_of(st.integers(0, 64), UINT32),
    step=st.one_of(st.integers(0, 256), UINT32),
    data=st.binary(max_size=4096),
    big=st.booleans(),
)
def test_fuzz_image_messages(encoding, height, width, step, data, big) -> None:
    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=int(big))
    msg.data = data
    out, peak = convert_with_peak(msg)
    assert peak < 64 * len(data) + (1 << 16)  # memory follows the data, not the fields
    if isinstance(out, GroundingError):
        assert out.status is Status.INVALID_INPUT
    else:
        assert out.shape == (height, width, 3) and height * width <= len(data)


@settings(max_examples=100, deadline=None)
@given(
    fmt=st.sampled_from(["jpeg", "png", "", "16UC1; compressedDepth png", "tiff"]),
    data=st.binary(max_size=1024),
)
def test_fuzz_compressed_messages(fmt: str, data: bytes) -> None:
    msg = CompressedImage(format=fmt)
    msg.data = data
    out, _ = convert_with_peak(msg)
    if isinstance(out, GroundingError):
        assert out.status is Status.INVALID_INPUT
    else:
        assert out.ndim == 3 and out.shape[2] == 3
