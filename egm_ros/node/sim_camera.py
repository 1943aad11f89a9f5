"""``sim_camera``: a simulated camera publishing the project's synthetic occlusion scenes, for
trying the grounding node without hardware (and for the demo).

Publishes ``image_raw`` (rgb8, sensor-data QoS) and ``camera_info`` at ``rate`` Hz, and with
``publish_depth`` (the default) ``depth/image_raw`` (``depth_encoding``: 16UC1 millimetres or
32FC1 metres) and ``depth/camera_info``: the scene seen by a pinhole camera above the table
(:mod:`egm_ros.data.scene_depth`), aligned to the colour image (same size, frame and stamp),
which stays the same with or without depth. A new scene is drawn every ``scene_period`` seconds
(deterministic from ``seed``), so commands about the current scene have time to be answered;
``scene_index`` (``std_msgs/UInt32``) says which. The scenes' ground truth (2D and 3D boxes)
is regenerated from the seed by whoever needs it (the demo).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import UInt32


def _int_range(lo: int, hi: int, description: str) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=description, integer_range=[IntegerRange(from_value=lo, to_value=hi, step=1)]
    )


def _float_range(lo: float, hi: float, description: str) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=description,
        floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi)],
    )


class SimCamera(Node):
    def __init__(self, node_name: str = "sim_camera", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.declare_parameter("rate", 10.0, _float_range(0.1, 120.0, "Frames per second."))
        self.declare_parameter("width", 224, _int_range(32, 7680, "Image width (pixels)."))
        self.declare_parameter("height", 224, _int_range(32, 4320, "Image height (pixels)."))
        self.declare_parameter("seed", 0, _int_range(0, 2**31 - 1, "First scene's seed."))
        self.declare_parameter(
            "scene_period", 5.0, _float_range(0.0, 3600.0, "Seconds per scene (0 = one scene).")
        )
        self.declare_parameter("frame_id", "sim_camera_optical")
        self.declare_parameter(
            "publish_depth",
            True,
            ParameterDescriptor(description="Publish depth/image_raw and depth/camera_info."),
        )
        self.declare_parameter(
            "depth_encoding",
            "16UC1",
            ParameterDescriptor(
                description="16UC1 (millimetres) or 32FC1 (metres), as REP 118.",
                additional_constraints="16UC1 or 32FC1",
            ),
        )
        if self._param("depth_encoding") not in ("16UC1", "32FC1"):
            raise ValueError(
                f"depth_encoding must be 16UC1 or 32FC1: {self._param('depth_encoding')!r}"
            )
        sensor = qos_profile_sensor_data
        self._image_pub = self.create_publisher(Image, "image_raw", sensor)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", sensor)
        self._depth_pubs: tuple[Any, Any] | None = None
        if self._param("publish_depth"):
            self._depth_pubs = (
                self.create_publisher(Image, "depth/image_raw", sensor),
                self.create_publisher(CameraInfo, "depth/camera_info", sensor),
            )
        self._depth: Image | None = None
        self._scene_pub = self.create_publisher(UInt32, "scene_index", 10)
        self._scene_index = -1
        self._frame: Image | None = None
        self._info: CameraInfo | None = None
        self._frames_in_scene = 0
        self.create_timer(1.0 / self.get_parameter("rate").value, self._tick)

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _render_size(self) -> tuple[int, int]:
        """The camera's resolution, or a larger one of its aspect below 224 pixels a side."""
        from egm_ros.data.scenes import MIN_SIZE

        width, height = self._param("width"), self._param("height")
        scale = max(1.0, MIN_SIZE / min(width, height))
        return max(MIN_SIZE, round(width * scale)), max(MIN_SIZE, round(height * scale))

    def scene_images(self, index: int, with_depth: bool = True) -> tuple[np.ndarray, Any]:
        """RGB and depth (metres, None without ``with_depth``) of scene ``index`` at the
        configured resolution (a larger rendering is scaled down: bilinear for the RGB, nearest
        for the depth, whose values must stay those of real surfaces)."""
        from PIL import Image as PILImage

        from egm_ros.data.scene_depth import scene_depth
        from egm_ros.data.scenes import generate_scene

        width, height = self._param("width"), self._param("height")
        w, h = self._render_size()
        scene = generate_scene(self._param("seed") + index, width=w, height=h)
        rgb, depth = scene.image, scene_depth(scene).depth if with_depth else None
        if (w, h) != (width, height):
            rgb = np.asarray(PILImage.fromarray(rgb).resize((width, height), PILImage.BILINEAR))
            if depth is not None:
                depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
        return rgb, depth

    def _next_scene(self) -> None:
        self._scene_index += 1
        rgb, depth = self.scene_images(self._scene_index, self._depth_pubs is not None)
        rgb = np.ascontiguousarray(rgb)
        height, width = rgb.shape[:2]
        frame = Image(height=height, width=width, encoding="rgb8", step=width * 3)
        frame.data = rgb.tobytes()
        frame.header.frame_id = self._param("frame_id")
        self._frame = frame
        self._info = pinhole_camera_info(width, height, frame.header.frame_id)
        if depth is not None:
            self._depth = depth_image_msg(depth, self._param("depth_encoding"), frame.header)
        self._frames_in_scene = 0
        self._scene_pub.publish(UInt32(data=self._scene_index))
        self.get_logger().debug(f"scene {self._scene_index} ({width}x{height})")

    def _tick(self) -> None:
        period = self._param("scene_period")
        frames_per_scene = max(1, round(period * self._param("rate"))) if period > 0 else 0
        if self._frame is None or (frames_per_scene and self._frames_in_scene >= frames_per_scene):
            self._next_scene()
        stamp = self.get_clock().now().to_msg()
        self._frame.header.stamp = stamp
        self._info.header.stamp = stamp
        self._image_pub.publish(self._frame)
        self._info_pub.publish(self._info)
        if self._depth_pubs is not None and self._depth is not None:
            self._depth.header.stamp = stamp  # aligned: the colour frame's stamp and frame
            self._depth_pubs[0].publish(self._depth)
            self._depth_pubs[1].publish(self._info)
        self._frames_in_scene += 1


def pinhole_camera_info(width: int, height: int, frame_id: str) -> CameraInfo:
    """The ideal pinhole CameraInfo (no distortion) of a ``width`` x ``height`` image, the
    camera :mod:`egm_ros.data.scene_depth` models."""
    from egm_ros.data.scene_depth import pinhole_intrinsics

    k = pinhole_intrinsics(width, height)
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.header.frame_id = frame_id
    info.d = [0.0] * 5
    info.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def depth_image_msg(depth: np.ndarray, encoding: str, header: Any) -> Image:
    """Metres as a REP 118 depth Image: 16UC1 millimetres or 32FC1 metres."""
    if encoding == "16UC1":
        pixels = np.round(depth * 1000.0).astype("<u2")
    elif encoding == "32FC1":
        pixels = np.ascontiguousarray(depth, dtype="<f4")
    else:
        raise ValueError(f"depth_encoding must be 16UC1 or 32FC1, got {encoding!r}")
    height, width = pixels.shape
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0)
    msg.step = width * pixels.itemsize
    msg.data = pixels.tobytes()
    msg.header.frame_id = header.frame_id
    return msg


def main(args: Sequence[str] | None = None) -> int:
    rclpy.init(args=list(args) if args is not None else sys.argv)
    node = SimCamera()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
