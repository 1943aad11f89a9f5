"""The ROS boundary: messages to core inputs and core outcomes to messages. Nothing else in
the package touches ROS message types."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from geometry_msgs.msg import Point, Pose, Vector3
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from egm_ros.core.compressed import DecodedImage, decode_compressed, encoded_as_is
from egm_ros.core.depth import DepthImage, decode_depth
from egm_ros.core.engine import EncodedImage
from egm_ros.core.grounder import Grounder
from egm_ros.core.images import image_to_rgb
from egm_ros.core.types import Box, Box3D, GroundingOutcome, Mode
from egm_ros.msg import (
    BoundingBox2D,
    BoundingBox3D,
    GroundedObject,
    GroundingCommand,
    GroundingResult,
    LatencyBreakdown,
)

_MODE_TO_MSG = {
    Mode.VISIBLE: GroundingResult.MODE_VISIBLE,
    Mode.AMODAL: GroundingResult.MODE_AMODAL,
}


def mode_from_msg(value: int, default: Mode) -> Mode:
    """GroundingCommand.MODE_* to a Mode (MODE_DEFAULT -> the node's default)."""
    if value == GroundingCommand.MODE_VISIBLE:
        return Mode.VISIBLE
    if value == GroundingCommand.MODE_AMODAL:
        return Mode.AMODAL
    if value == GroundingCommand.MODE_DEFAULT:
        return default
    raise ValueError(f"unknown mode {value} (0 default, 1 visible, 2 amodal)")


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def image_msg_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """Decode a raw or compressed image message (raises GroundingError on bad input)."""
    return decode_image_msg(msg).rgb


def decode_image_msg(msg: Image | CompressedImage, max_pixels: int = 0) -> DecodedImage:
    """Decode a raw or compressed image message with its size as sent: a JPEG over
    ``max_pixels`` comes back decoded at a reduced scale (raises GroundingError on bad input)."""
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg.format, msg.data, max_pixels)
    rgb = image_to_rgb(
        msg.encoding, msg.width, msg.height, msg.step, msg.data, bool(msg.is_bigendian)
    )
    return DecodedImage(rgb, (rgb.shape[1], rgb.shape[0]))


def decode_depth_msg(msg: Image) -> DepthImage:
    """A depth image message as a view on its buffer (raises DepthError on bad input)."""
    return decode_depth(
        msg.encoding, msg.width, msg.height, msg.step, msg.data, bool(msg.is_bigendian)
    )


class FrameInput(NamedTuple):
    """A camera frame made ready for the grounder."""

    #: The decoded frame; None when its own bytes go to the engine and nothing needs pixels.
    decoded: DecodedImage | None
    #: The frame's own JPEG/PNG bytes (compressed frames), None otherwise.
    encoded: EncodedImage | None
    #: (width, height) as the camera sent it: the pixels boxes are reported in.
    source_size: tuple[int, int]


def frame_input(
    msg: Image | CompressedImage, grounder: Grounder, pixels_wanted: bool = False
) -> FrameInput:
    """Decode ``msg`` only when something needs its pixels: a compressed frame whose bytes the
    engine takes as they are (:meth:`Grounder.sends_as_is`) stays undecoded unless
    ``pixels_wanted`` (the debug overlay draws on it). Otherwise decoded as
    :func:`decode_image_msg` does, at a reduced scale when larger than the grounder needs.
    Raises GroundingError on bad input."""
    encoded = image_msg_bytes(msg)
    if encoded is not None and not pixels_wanted and grounder.sends_as_is(encoded.size):
        return FrameInput(None, encoded, encoded.size)
    decoded = decode_image_msg(msg, grounder.max_pixels)
    return FrameInput(decoded, encoded, decoded.source_size)


def image_msg_bytes(msg: Image | CompressedImage) -> EncodedImage | None:
    """A compressed frame's own JPEG/PNG bytes, to forward unchanged; None for raw frames
    (and compressed depth), which are encoded from their pixels when an engine needs bytes."""
    if isinstance(msg, CompressedImage):
        return encoded_as_is(msg.data)
    return None


def box_to_msg(box: Box | None) -> BoundingBox2D:
    """Corner box to centre/size; ``None`` gives an all-zero box (size 0 = no box)."""
    msg = BoundingBox2D()
    if box is not None:
        msg.center.position.x, msg.center.position.y = box.center
        msg.size_x, msg.size_y = box.width, box.height
    return msg


def box3d_to_msg(box: Box3D) -> BoundingBox3D:
    """Centre and size in metres; the orientation stays the identity (axis-aligned)."""
    (x, y, z), (sx, sy, sz) = box.center, box.size
    return BoundingBox3D(center=Pose(position=Point(x=x, y=y, z=z)), size=Vector3(x=sx, y=sy, z=sz))


def outcome_to_msg(
    outcome: GroundingOutcome,
    header: Header,
    request_id: str,
    image_size: tuple[int, int],
    publish_reasoning: bool = True,
) -> GroundingResult:
    """The result message: header copied from the source image, boxes in its pixels."""
    msg = GroundingResult()
    msg.header = header
    msg.request_id = request_id
    msg.command = outcome.prompt
    msg.mode = _MODE_TO_MSG[outcome.mode]
    msg.status = outcome.status.code
    msg.status_message = outcome.message or outcome.status.value
    for obj in outcome.objects:
        out = GroundedObject(label=obj.label, visible=box_to_msg(obj.visible))
        if obj.score is not None:
            out.has_score, out.score = True, float(obj.score)
        if obj.amodal_predicted and obj.amodal is not None:
            out.amodal_predicted, out.amodal = True, box_to_msg(obj.amodal)
        if obj.visible_3d is not None:
            out.has_3d, out.visible_3d = True, box3d_to_msg(obj.visible_3d)
            if obj.amodal_3d is not None:
                out.amodal_3d = box3d_to_msg(obj.amodal_3d)
        msg.objects.append(out)
    msg.reasoning = outcome.reasoning if publish_reasoning else ""
    msg.model = outcome.model
    msg.generated_tokens = max(0, int(outcome.tokens))
    lat = outcome.latency
    msg.latency = LatencyBreakdown(
        waiting_ms=lat.waiting_ms,
        preprocessing_ms=lat.preprocessing_ms,
        inference_ms=lat.inference_ms,
        total_ms=lat.total_ms,
    )
    msg.image_width, msg.image_height = (max(0, int(v)) for v in image_size)
    return msg


def rgb_to_image_msg(rgb: np.ndarray, header: Header) -> Image:
    """An rgb8 Image message (the debug image)."""
    rgb = np.ascontiguousarray(rgb)
    msg = Image(
        header=header,
        height=rgb.shape[0],
        width=rgb.shape[1],
        encoding="rgb8",
        is_bigendian=0,
        step=rgb.shape[1] * 3,
    )
    msg.data = rgb.tobytes()
    return msg
