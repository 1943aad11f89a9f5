"""Depth messages for tests: an Image in a REP 118 encoding (or a wrong one) from metres, and
a pinhole CameraInfo."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image


def depth_image(
    z: np.ndarray, at: Time, encoding: str = "16UC1", frame_id: str = "camera"
) -> Image:
    """``z`` metres (NaN: no depth) as 16UC1 millimetres (0: no depth), 32FC1 metres, or any
    other encoding as zeroed 3-channel pixels (a colour image sent by mistake)."""
    if encoding == "16UC1":
        data = np.where(np.isfinite(z), np.round(z * 1000), 0).astype("<u2")
    elif encoding == "32FC1":
        data = z.astype("<f4")
    else:
        data = np.zeros((*z.shape, 3), np.uint8)
    msg = Image(height=z.shape[0], width=z.shape[1], encoding=encoding, is_bigendian=0)
    msg.step = data.strides[0]
    msg.data = data.tobytes()
    msg.header.stamp, msg.header.frame_id = at, frame_id
    return msg


def camera_info(width: int, height: int, fx: float, frame_id: str = "camera") -> CameraInfo:
    """A pinhole camera_info: square pixels, principal point at the image centre."""
    info = CameraInfo(width=width, height=height)
    info.header.frame_id = frame_id
    info.k = [fx, 0.0, (width - 1) / 2, 0.0, fx, (height - 1) / 2, 0.0, 0.0, 1.0]
    return info
