"""Depth messages for tests: an Image in a REP 118 encoding (or a wrong one) from metres, a
pinhole CameraInfo, and a command sent to a node with use_depth (scripted server answer, scene,
frames)."""

from __future__ import annotations

import json
import time

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


# --------------------------------------------------------------------------- a node with depth
W, H, FX = 640, 480, 525.0
#: The scripted model's boxes (Qwen3-VL 0..1000): pixels (64, 96)-(192, 192) visible, down to
#: 288 amodal, in a 640 x 480 frame.
VISIBLE, AMODAL = [100, 200, 300, 400], [100, 200, 300, 600]


def box_reply(request: dict) -> str:
    """The scripted OpenAI-compatible server's answer: VISIBLE, or AMODAL to amodal queries."""
    amodal = "amodal" in json.dumps(request["messages"][0]["content"])
    box = AMODAL if amodal else VISIBLE
    return f'The mug.</think>\n```json\n[{{"bbox_2d": {box}, "label": "mug"}}]\n```'


def target_scene() -> np.ndarray:
    """A wall at 2 m and the target, a patch at 0.8 m filling the visible box."""
    z = np.full((H, W), 2.0)
    z[96:192, 64:192] = 0.8
    return z


def ask_with_depth(harness, depth_topic: str = "/cam/depth/image_raw"):
    """Colour frame, matching depth frame and depth camera_info into /cam, then an amodal
    command pinned to that frame; its one result."""
    from node_harness import make_image, wait_for
    from rclpy.qos import qos_profile_sensor_data

    from egm_ros.msg import GroundingCommand

    probe = harness.probe("/cam")
    depth_pub = probe.node.create_publisher(Image, depth_topic, qos_profile_sensor_data)
    info_pub = probe.node.create_publisher(
        CameraInfo, "/cam/depth/camera_info", qos_profile_sensor_data
    )
    wait_for(probe.connected)
    wait_for(lambda: depth_pub.get_subscription_count() > 0)
    at = Time(sec=20, nanosec=5)
    info_pub.publish(camera_info(W, H, FX))
    depth_pub.publish(depth_image(target_scene(), at))
    probe.image_pub.publish(make_image(W, H, at))
    time.sleep(0.3)  # best-effort frames before the command
    probe.gcommand_pub.publish(
        GroundingCommand(prompt="the mug", mode=GroundingCommand.MODE_AMODAL, frame_stamp=at)
    )
    (result,) = probe.wait_results(1)
    return result
