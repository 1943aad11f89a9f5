"""``sim_camera``: a simulated camera publishing the project's synthetic occlusion scenes, for
trying the grounding node without hardware (and for the demo).

Publishes ``image_raw`` (rgb8, sensor-data QoS) and ``camera_info`` at ``rate`` Hz. A new scene
is drawn every ``scene_period`` seconds (deterministic from ``seed``), so commands about the
current scene have time to be answered; ``scene_index`` (``std_msgs/UInt32``) says which.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

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
        self._image_pub = self.create_publisher(Image, "image_raw", qos_profile_sensor_data)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self._scene_pub = self.create_publisher(UInt32, "scene_index", 10)
        self._scene_index = -1
        self._frame: Image | None = None
        self._info: CameraInfo | None = None
        self._frames_in_scene = 0
        self.create_timer(1.0 / self.get_parameter("rate").value, self._tick)

    def _param(self, name: str):
        return self.get_parameter(name).value

    def scene_rgb(self, index: int) -> np.ndarray:
        """The RGB image of scene ``index`` at the configured resolution: rendered at the
        camera's own aspect (below 224 pixels a side, rendered larger and scaled down)."""
        from PIL import Image as PILImage

        from egm_ros.data.scenes import MIN_SIZE, generate_scene

        width, height = self._param("width"), self._param("height")
        scale = max(1.0, MIN_SIZE / min(width, height))
        w, h = max(MIN_SIZE, round(width * scale)), max(MIN_SIZE, round(height * scale))
        rgb = generate_scene(self._param("seed") + index, width=w, height=h).image
        if rgb.shape[:2] != (height, width):
            rgb = np.asarray(PILImage.fromarray(rgb).resize((width, height), PILImage.BILINEAR))
        return rgb

    def _next_scene(self) -> None:
        self._scene_index += 1
        rgb = np.ascontiguousarray(self.scene_rgb(self._scene_index))
        height, width = rgb.shape[:2]
        frame = Image(height=height, width=width, encoding="rgb8", step=width * 3)
        frame.data = rgb.tobytes()
        frame.header.frame_id = self._param("frame_id")
        self._frame = frame
        self._info = pinhole_camera_info(width, height, frame.header.frame_id)
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
        self._frames_in_scene += 1


def pinhole_camera_info(width: int, height: int, frame_id: str, hfov_deg: float = 60.0):
    """An ideal pinhole CameraInfo (no distortion) for a ``width`` x ``height`` image."""
    fx = width / (2.0 * np.tan(np.radians(hfov_deg) / 2.0))
    cx, cy = width / 2.0, height / 2.0
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.header.frame_id = frame_id
    info.d = [0.0] * 5
    info.k = [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


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
