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


def run_camera(
    namespace: str, params: dict, topics: dict[str, type], count: int = 5
) -> tuple[dict[str, list], float]:
    """A SimCamera in ``namespace`` with ``params``, until each of ``topics`` (relative) got
    ``count`` messages: the messages by topic, and the seconds that took."""
    harness = Harness()
    try:
        overrides = [Parameter(name, value=value) for name, value in params.items()]
        camera = SimCamera(
            context=harness.context, namespace=namespace, parameter_overrides=overrides
        )
        harness.add(camera)
        probe = harness.probe(namespace)
        got: dict[str, list] = {topic: [] for topic in topics}
        for topic, kind in topics.items():
            probe.node.create_subscription(
                kind, f"{namespace}/{topic}", got[topic].append, qos_profile_sensor_data
            )
        t0 = time.monotonic()
        wait_for(lambda: all(len(v) >= count for v in got.values()), 10)
        elapsed = time.monotonic() - t0
    finally:
        harness.close()
    return got, elapsed


def test_publishes_scene_frames_and_camera_info() -> None:
    params = {"rate": 20.0, "seed": 7, "width": 320, "height": 240}
    got, elapsed = run_camera("/sim", params, {"image_raw": Image, "camera_info": CameraInfo})
    frame = got["image_raw"][-1]
    assert (frame.width, frame.height, frame.encoding) == (320, 240, "rgb8")
    assert frame.header.frame_id == "sim_camera_optical" and frame.header.stamp.sec > 0
    rgb = image_to_rgb(frame.encoding, frame.width, frame.height, frame.step, frame.data)
    # Scene 0 (seed 7) rendered at the camera's own 4:3 aspect, not a stretched square.
    assert np.array_equal(rgb, generate_scene(7, width=320, height=240).image)
    info = got["camera_info"][-1]
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


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_publishes_depth_aligned_to_the_unchanged_colour_frames(encoding: str) -> None:
    from egm_ros.core.depth import decode_depth
    from egm_ros.data.scene_depth import scene_depth

    params = {"rate": 20.0, "seed": 5, "width": 320, "height": 240, "depth_encoding": encoding}
    topics = {"image_raw": Image, "depth/image_raw": Image, "depth/camera_info": CameraInfo}
    got, _ = run_camera("/sim3d", params, topics, count=3)
    colour = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got["image_raw"]}
    depth = got["depth/image_raw"][-1]
    assert (depth.header.stamp.sec, depth.header.stamp.nanosec) in colour
    assert depth.header.frame_id == "sim_camera_optical"
    assert (depth.width, depth.height, depth.encoding) == (320, 240, encoding)
    info = got["depth/camera_info"][-1]
    assert (info.width, info.height) == (320, 240) and info.k[0] > 0
    scene = generate_scene(5, width=320, height=240)
    want = scene_depth(scene).depth
    pixels = decode_depth(depth.encoding, 320, 240, depth.step, depth.data)
    metres = pixels.pixels.astype(np.float64) * pixels.scale
    assert np.allclose(metres, want, atol=0.0006)  # millimetres, or metres as float32
    rgb = got["image_raw"][-1]
    assert np.array_equal(
        image_to_rgb(rgb.encoding, rgb.width, rgb.height, rgb.step, rgb.data), scene.image
    )


def test_publish_depth_off_publishes_no_depth() -> None:
    harness = Harness()
    try:
        camera = SimCamera(
            context=harness.context,
            namespace="/flat",
            parameter_overrides=[Parameter("publish_depth", value=False)],
        )
        harness.add(camera)
        topics = {
            name for name, _ in camera.get_publisher_names_and_types_by_node("sim_camera", "/flat")
        }
    finally:
        harness.close()
    assert "/flat/image_raw" in topics and not any("depth" in t for t in topics)
