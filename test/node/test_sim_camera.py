"""The simulated camera publishes synthetic scenes with camera_info at its rate."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from node_harness import Harness, wait_for  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from egm_ros.core.images import image_to_rgb  # noqa: E402
from egm_ros.data.scenes import generate_scene  # noqa: E402
from egm_ros.node.sim_camera import SimCamera  # noqa: E402

pytestmark = pytest.mark.ros


def test_publishes_scene_frames_and_camera_info() -> None:
    harness = Harness()
    try:
        camera = SimCamera(
            context=harness.context,
            namespace="/sim",
            parameter_overrides=[
                Parameter("rate", value=20.0),
                Parameter("seed", value=7),
                Parameter("width", value=320),
                Parameter("height", value=240),
            ],
        )
        harness.add(camera)
        probe = harness.probe("/sim")
        images: list[Image] = []
        infos: list[CameraInfo] = []
        probe.node.create_subscription(
            Image, "/sim/image_raw", images.append, qos_profile_sensor_data
        )
        probe.node.create_subscription(
            CameraInfo, "/sim/camera_info", infos.append, qos_profile_sensor_data
        )
        t0 = time.monotonic()
        wait_for(lambda: len(images) >= 5 and infos, 10)
        elapsed = time.monotonic() - t0
    finally:
        harness.close()
    frame = images[-1]
    assert (frame.width, frame.height, frame.encoding) == (320, 240, "rgb8")
    assert frame.header.frame_id == "sim_camera_optical" and frame.header.stamp.sec > 0
    rgb = image_to_rgb(frame.encoding, frame.width, frame.height, frame.step, frame.data)
    # Scene 0 (seed 7) rendered at the camera's own 4:3 aspect, not a stretched square.
    assert np.array_equal(rgb, generate_scene(7, width=320, height=240).image)
    info = infos[-1]
    assert (info.width, info.height) == (320, 240) and info.k[2] == 160.0
    assert elapsed < 5  # 20 Hz: five frames well within the wait


def test_a_new_scene_is_logged_at_debug_only(capfd) -> None:
    # Issue 20, point 9: every new scene was an INFO line (every 5 s by default).
    from rclpy.logging import LoggingSeverity

    harness = Harness()
    try:
        camera = SimCamera(
            context=harness.context,
            namespace="/quiet",
            parameter_overrides=[
                Parameter("rate", value=20.0),
                Parameter("scene_period", value=0.1),
            ],
        )
        harness.add(camera)
        wait_for(lambda: camera._scene_index >= 3, 10)
        quiet = capfd.readouterr().err
        camera.get_logger().set_level(LoggingSeverity.DEBUG)
        shown = camera._scene_index
        wait_for(lambda: camera._scene_index >= shown + 2, 10)
        debug = capfd.readouterr().err
    finally:
        harness.close()
    assert "scene " not in quiet
    assert [line for line in debug.splitlines() if "DEBUG" in line and "]: scene " in line]
