"""Frame choice: newest frame, closest to a stamp, and clear reasons when there is none."""

from __future__ import annotations

import pytest

from egm_ros.node.frame_buffer import FrameBuffer, FrameChoiceError

S = 1_000_000_000


def test_latest_is_the_newest_arrival_and_too_old_is_refused() -> None:
    buf = FrameBuffer(seconds=1.0)
    buf.add(5 * S, "a", received=100.0)
    buf.add(6 * S, "b", received=100.5)
    assert buf.latest(now=100.6).message == "b"
    with pytest.raises(FrameChoiceError, match="old"):
        buf.latest(now=102.0)


def test_frames_received_counts_every_frame_added_pruned_or_not() -> None:
    buf = FrameBuffer(seconds=1.0)
    for i in range(5):
        buf.add(i * S, str(i), received=100.0 + i)  # each prunes the one before
    assert buf.received == 5 and len(buf) == 2


def test_empty_buffer_says_no_frame_yet() -> None:
    with pytest.raises(FrameChoiceError, match="no camera frame"):
        FrameBuffer(seconds=1.0).latest()


def test_closest_to_stamp_within_tolerance() -> None:
    buf = FrameBuffer(seconds=10.0)
    for i, name in enumerate("abcd"):
        buf.add((10 + i) * S, name, received=50.0 + i * 0.1)
    assert buf.closest(11 * S + 40_000_000, 0.1, now=50.5).message == "b"
    assert buf.closest(12 * S - 30_000_000, 0.1, now=50.5).message == "c"
    with pytest.raises(FrameChoiceError, match="closest is 7.000 s away"):
        buf.closest(20 * S, 0.1, now=50.5)


def test_frames_older_than_the_span_are_dropped_and_count_is_capped() -> None:
    buf = FrameBuffer(seconds=1.0, max_frames=3)
    for i in range(10):
        buf.add(i * S, i, received=float(i) * 0.1)
    assert len(buf) == 3
    buf.add(100 * S, "late", received=5.0)
    assert len(buf) == 1


def test_out_of_order_stamps_are_kept_sorted() -> None:
    buf = FrameBuffer(seconds=10.0)
    buf.add(3 * S, "three", received=1.0)
    buf.add(1 * S, "one", received=1.1)
    assert buf.closest(1 * S, 0.0, now=1.2).message == "one"
    assert buf.latest(now=1.2).message == "one"  # newest arrival, whatever its stamp
