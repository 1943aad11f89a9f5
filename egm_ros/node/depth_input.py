"""The depth input (``use_depth``): depth frames kept as they arrived, the latest depth
camera_info, and the 3D step of one answered command: the depth frame whose stamp is closest to
the colour frame's (within ``depth_stamp_tolerance``), checked against the colour image and
lifted by :mod:`egm_ros.core.depth`.

Bad depth never gives a wrong box and never changes the 2D answer: an object without 3D keeps
``has_3d`` false and the reason is added to the result's status message. That the depth is
aligned to the colour image is the camera driver's part: its size must be the colour image's;
its frame_id is not compared (drivers name an aligned depth's frame in their own ways).
"""

from __future__ import annotations

from typing import Any

from egm_ros.core.depth import (
    DepthError,
    DepthImage,
    Intrinsics,
    check_alignment,
    lift_objects,
)
from egm_ros.core.types import GroundingOutcome, Status
from egm_ros.node.conversions import decode_depth_msg, stamp_to_ns
from egm_ros.node.frame_buffer import Frame, FrameBuffer, FrameChoiceError


class DepthInput:
    """Thread-safe: the subscriptions' callbacks add, the workers lift."""

    def __init__(self, seconds: float) -> None:
        self.frames = FrameBuffer(seconds)
        self.info: Any = None  # the latest depth/camera_info message

    def add_frame(self, msg: Any) -> None:
        """A ``depth/image_raw`` message, kept undecoded."""
        self.frames.add(stamp_to_ns(msg.header.stamp), msg)

    def set_info(self, msg: Any) -> None:
        self.info = msg

    def match(self, stamp_ns: int, tolerance: float) -> Frame | None:
        """The buffered depth frame closest to ``stamp_ns`` within ``tolerance``, if any."""
        try:
            return self.frames.closest(stamp_ns, tolerance)
        except FrameChoiceError:
            return None

    def lift(
        self,
        outcome: GroundingOutcome,
        colour_header: Any,
        colour_size: tuple[int, int],
        tolerance: float,
        matched: Frame | None = None,
    ) -> None:
        """Give the objects of an answered outcome their 3D boxes (from ``matched``, the depth
        frame matched when the command came, or one matched now); where the depth cannot, say
        why in ``outcome.message`` (its status stays)."""
        if outcome.status is not Status.OK or not outcome.objects:
            return
        try:
            depth, k = self._depth_for(colour_header, colour_size, tolerance, matched)
        except DepthError as err:
            reasons = [str(err)]
        else:
            reasons = lift_objects(depth, k, outcome.objects)
        if reasons:
            outcome.message = f"{outcome.message or outcome.status.value}; no 3D: " + "; ".join(
                reasons
            )

    def _depth_for(
        self,
        colour_header: Any,
        colour_size: tuple[int, int],
        tolerance: float,
        frame: Frame | None,
    ) -> tuple[DepthImage, Intrinsics]:
        """The depth frame matched to the colour frame, decoded and checked, and the
        intrinsics to back-project it with (raises DepthError)."""
        if frame is None:
            try:
                frame = self.frames.closest(stamp_to_ns(colour_header.stamp), tolerance)
            except FrameChoiceError as err:
                raise DepthError(
                    f"no depth frame for the colour frame's stamp ({err}; depth_stamp_tolerance)"
                ) from None
        msg, info = frame.message, self.info
        if info is None:
            raise DepthError("no depth camera_info received")
        depth = decode_depth_msg(msg)
        check_alignment(depth.size, colour_size, (int(info.width), int(info.height)))
        return depth, Intrinsics.from_k(info.k)
