"""A short buffer of recent camera frames, kept as the messages that arrived (unconverted:
a frame is decoded only when a command needs it, so 30 Hz cameras cost next to nothing).

ROS-free: frames are any objects with a stamp in nanoseconds; the node stores the messages.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Frame:
    stamp_ns: int  # the image header's stamp
    received: float  # time.monotonic() at arrival
    message: Any


class FrameChoiceError(Exception):
    """No usable frame; the message says why (it becomes a NO_FRAME result)."""


class FrameBuffer:
    """Frames of the last ``seconds`` (by arrival time), in stamp order. Thread-safe."""

    def __init__(self, seconds: float, max_frames: int = 600) -> None:
        self.seconds = seconds
        self.max_frames = max_frames
        self._frames: list[Frame] = []
        self._stamps: list[int] = []
        self._lock = threading.Lock()
        #: Frames added since start (/diagnostics: how fast the image callback keeps up).
        self.received = 0

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, stamp_ns: int, message: Any, received: float | None = None) -> None:
        now = time.monotonic() if received is None else received
        frame = Frame(stamp_ns, now, message)
        with self._lock:
            i = bisect.bisect_right(self._stamps, stamp_ns)
            self._frames.insert(i, frame)
            self._stamps.insert(i, stamp_ns)
            self.received += 1
            self._prune(now)

    def _prune(self, now: float) -> None:
        keep = [f for f in self._frames if now - f.received <= self.seconds]
        if len(keep) > self.max_frames:
            keep = keep[-self.max_frames :]
        if len(keep) != len(self._frames):
            self._frames = keep
            self._stamps = [f.stamp_ns for f in keep]

    def latest(self, now: float | None = None) -> Frame:
        """The newest frame (by stamp), if it arrived within the buffer's time span."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self._frames:
                raise FrameChoiceError("no camera frame received yet")
            frame = max(self._frames, key=lambda f: f.received)
        age = now - frame.received
        if age > self.seconds:
            raise FrameChoiceError(
                f"newest camera frame is {age:.1f} s old (frame_buffer_seconds={self.seconds})"
            )
        return frame

    def closest(self, stamp_ns: int, tolerance_s: float, now: float | None = None) -> Frame:
        """The buffered frame whose stamp is closest to ``stamp_ns``, within ``tolerance_s``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._prune(now)
            if not self._frames:
                raise FrameChoiceError("no camera frame in the buffer")
            i = bisect.bisect_left(self._stamps, stamp_ns)
            candidates = [self._frames[j] for j in (i - 1, i) if 0 <= j < len(self._frames)]
        best = min(candidates, key=lambda f: abs(f.stamp_ns - stamp_ns))
        offset = abs(best.stamp_ns - stamp_ns) / 1e9
        if offset > tolerance_s:
            raise FrameChoiceError(
                f"no buffered frame within {tolerance_s:.3f} s of the requested stamp "
                f"(closest is {offset:.3f} s away)"
            )
        return best
