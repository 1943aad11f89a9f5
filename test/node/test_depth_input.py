"""The 3D step on a command's path (use_depth): depth frames matched to the colour frame by
stamp, decoded and lifted; every bad-depth case leaves the 2D answer as it is, has_3d false and
the reason in status_message. Driven without an executor, like test_request_path."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from depth_frames import camera_info as pinhole_info  # noqa: E402
from depth_frames import depth_image  # noqa: E402
from node_harness import make_image, wait_for  # noqa: E402
from scripted_engine import ScriptedEngine, answer  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402

from egm_ros.core.families import Family  # noqa: E402
from egm_ros.core.grounder import Grounder, GrounderConfig  # noqa: E402
from egm_ros.msg import GroundingCommand, GroundingResult  # noqa: E402
from egm_ros.node.depth_input import DepthInput  # noqa: E402
from egm_ros.node.frame_buffer import FrameBuffer  # noqa: E402
from egm_ros.node.request_path import PathSettings, RequestPath  # noqa: E402

pytestmark = pytest.mark.ros

W, H = 640, 480
FX = 525.0
# Qwen3-VL answers in 0..1000: the visible box is pixels (64, 96)-(192, 192), the amodal one
# reaches down to 288.
VISIBLE, AMODAL = [100, 200, 300, 400], [100, 200, 300, 600]


def stamp(sec: int, nanosec: int = 0) -> Time:
    return Time(sec=sec, nanosec=nanosec)


def depth_scene() -> np.ndarray:
    """A wall at 2 m and the target, a patch at 0.8 m, filling the visible box."""
    z = np.full((H, W), 2.0)
    z[96:192, 64:192] = 0.8
    return z


def camera_info(width: int = W, height: int = H, fx: float = FX) -> CameraInfo:
    return pinhole_info(width, height, fx)


class DepthPath:
    """A started path with a depth input (frames kept ``seconds``), and what came out of it."""

    def __init__(self, tolerance: float = 0.05, seconds: float = 60.0) -> None:
        self.engine = ScriptedEngine(visible=answer(VISIBLE), amodal=answer(AMODAL))
        self.results: list[GroundingResult] = []
        self.path = RequestPath(
            "cam",
            FrameBuffer(60.0),
            PathSettings(depth_stamp_tolerance=tolerance),
            now=lambda: Time(sec=99),
            warn=lambda message: None,
        )
        self.path.depth = DepthInput(seconds)
        self.path.start(Grounder(self.engine, GrounderConfig(family=Family.QWEN3_VL)), 1)

    def submit(self, mode: int = GroundingCommand.MODE_VISIBLE) -> None:
        self.path.add_frame(make_image(W, H, stamp(10)))
        self.path.submit("the mug", self.results.append, mode_code=mode)

    def ask(self, mode: int = GroundingCommand.MODE_VISIBLE) -> GroundingResult:
        self.submit(mode)
        wait_for(lambda: len(self.results) == 1, 20)
        return self.results.pop()


@pytest.fixture
def made():
    paths: list[DepthPath] = []

    def make(**kwargs) -> DepthPath:
        paths.append(DepthPath(**kwargs))
        return paths[-1]

    yield make
    for p in paths:
        p.engine.gate.set()
        p.path.stop()


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_matched_depth_gives_visible_and_amodal_3d_boxes(made, encoding: str) -> None:
    p = made()
    p.path.depth.set_info(camera_info())
    p.path.depth.add_frame(depth_image(depth_scene(), stamp(10), encoding))
    result = p.ask(GroundingCommand.MODE_AMODAL)
    assert result.status == GroundingResult.STATUS_OK and result.status_message == "ok"
    (obj,) = result.objects
    assert obj.has_3d
    v = obj.visible_3d
    assert v.center.position.z == pytest.approx(0.8, abs=0.002)
    assert v.size.x == pytest.approx(128 * 0.8 / FX, abs=0.005)  # the box's 128 pixels
    assert v.size.y == pytest.approx(96 * 0.8 / FX, abs=0.005)
    assert v.center.position.x == pytest.approx((128 - 0.5 - 319.5) * 0.8 / FX, abs=0.005)
    a = obj.amodal_3d
    assert a.size.y == pytest.approx(192 * 0.8 / FX, abs=0.005)  # down to the amodal 288
    assert a.size.z == pytest.approx(a.size.x, abs=1e-6)  # as deep as wide
    assert (a.center.orientation.w, v.center.orientation.w) == (1.0, 1.0)
    assert result.header.frame_id == "camera"  # the colour image's header


def test_a_depth_frame_within_the_tolerance_is_matched(made) -> None:
    p = made(tolerance=0.05)
    p.path.depth.set_info(camera_info())
    p.path.depth.add_frame(depth_image(depth_scene(), stamp(9, 970_000_000)))  # 30 ms early
    p.path.depth.add_frame(depth_image(np.full((H, W), 3.0), stamp(9, 800_000_000)))
    (obj,) = p.ask().objects
    assert obj.has_3d and obj.visible_3d.center.position.z == pytest.approx(0.8, abs=0.002)


def test_a_command_answered_after_its_depth_frame_left_the_buffer_keeps_it(made) -> None:
    # Matched when the command came: a slow answer (here the engine is held) must not lose
    # the depth frame to the buffer's time span.
    p = made(seconds=0.3)
    p.path.depth.set_info(camera_info())
    p.path.depth.add_frame(depth_image(depth_scene(), stamp(10)))
    p.engine.gate.clear()
    p.submit()
    assert p.engine.started.acquire(timeout=10)
    time.sleep(0.5)
    p.path.depth.add_frame(depth_image(depth_scene(), stamp(60)))  # prunes the old one
    assert len(p.path.depth.frames) == 1
    p.engine.gate.set()
    wait_for(lambda: len(p.results) == 1, 20)
    assert p.results[0].objects[0].has_3d, p.results[0].status_message


def test_a_depth_frame_arriving_after_the_command_is_used(made) -> None:
    # Depth often comes a little after its colour frame: matched again after the answer.
    p = made()
    p.engine.gate.clear()
    p.submit()
    assert p.engine.started.acquire(timeout=10)
    p.path.depth.set_info(camera_info())
    p.path.depth.add_frame(depth_image(depth_scene(), stamp(10, 20_000_000)))
    p.engine.gate.set()
    wait_for(lambda: len(p.results) == 1, 20)
    assert p.results[0].objects[0].has_3d, p.results[0].status_message


def _zeros() -> np.ndarray:
    z = depth_scene()
    z[96:192, 64:192] = np.nan  # 16UC1: 0, REP 118's "no depth"
    return z


BAD = {
    "no depth frame": ([], camera_info(), "no depth frame for the colour frame's stamp"),
    "depth frame too far in time": (
        [depth_image(depth_scene(), stamp(10, 200_000_000))],
        camera_info(),
        "closest is 0.200 s away",
    ),
    "no camera_info": ([depth_image(depth_scene(), stamp(10))], None, "no depth camera_info"),
    "camera_info without K": (
        [depth_image(depth_scene(), stamp(10))],
        camera_info(fx=0.0),
        "no focal length",
    ),
    "zeros": ([depth_image(_zeros(), stamp(10))], camera_info(), "0 of 12288 depth pixels"),
    "NaN": ([depth_image(_zeros(), stamp(10), "32FC1")], camera_info(), "without depth"),
    "no pixel in range": (
        [depth_image(np.full((H, W), 30.0), stamp(10), "32FC1")],
        camera_info(),
        "outside 0.05-20 m",
    ),
    "wrong encoding": (
        [depth_image(depth_scene(), stamp(10), "rgb8")],
        camera_info(),
        "not a REP 118 depth encoding",
    ),
    "size of another image": (
        [depth_image(np.full((240, 320), 1.0), stamp(10))],
        camera_info(320, 240),
        "depth image is 320x240 but the colour image is 640x480",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_depth_keeps_the_2d_answer_and_says_why(made, case: str) -> None:
    frames, info, reason = BAD[case]
    p = made()
    if info is not None:
        p.path.depth.set_info(info)
    for frame in frames:
        p.path.depth.add_frame(frame)
    result = p.ask()
    assert result.status == GroundingResult.STATUS_OK  # the 2D answer, as without depth
    (obj,) = result.objects
    assert obj.visible.size_x == 128 and not obj.has_3d
    assert obj.visible_3d.size.x == obj.visible_3d.center.position.z == 0.0
    assert result.status_message.startswith("ok; no 3D: ") and reason in result.status_message


def test_without_a_depth_input_results_are_as_before(made) -> None:
    p = made()
    p.path.depth = None  # use_depth off
    result = p.ask()
    assert result.status_message == "ok" and not result.objects[0].has_3d
