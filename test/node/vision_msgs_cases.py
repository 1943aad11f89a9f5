"""Run by test_vision_outputs.py in a process that imports the test-only vision_msgs (not
collected on its own: vision_msgs is not installed in the venv). The conversions field by field,
and the node publishing detections, amodal_detections and detections_3d over DDS."""

from __future__ import annotations

import pytest
import vision_msgs.msg as vm
from builtin_interfaces.msg import Time
from depth_frames import FX, ask_with_depth, box_reply
from geometry_msgs.msg import Point, Pose, Vector3
from node_harness import RELIABLE, Harness, wait_for
from openai_server import ScriptedOpenAIServer
from rclpy.parameter import Parameter

from egm_ros.msg import (
    BoundingBox2D,
    BoundingBox3D,
    GroundedObject,
    GroundingResult,
    Point2D,
    Pose2D,
)
from egm_ros.node.grounding_node import GroundingNode
from egm_ros.node.vision_outputs import detections_2d, detections_3d, vision_msgs


def _box(cx: float, cy: float, w: float, h: float) -> BoundingBox2D:
    return BoundingBox2D(center=Pose2D(position=Point2D(x=cx, y=cy)), size_x=w, size_y=h)


def _result() -> GroundingResult:
    result = GroundingResult(request_id="r-9", command="the mug behind the laptop")
    result.header.stamp, result.header.frame_id = Time(sec=4, nanosec=2), "cam_optical"
    result.mode = GroundingResult.MODE_AMODAL
    box3d = BoundingBox3D(
        center=Pose(position=Point(x=0.1, y=-0.05, z=0.9)), size=Vector3(x=0.08, y=0.1, z=0.04)
    )
    result.objects = [
        GroundedObject(
            label="mug",
            has_score=True,
            score=0.75,
            visible=_box(100, 80, 40, 30),
            amodal_predicted=True,
            amodal=_box(100, 90, 40, 50),
            has_3d=True,
            visible_3d=box3d,
        ),
        GroundedObject(label="mug", visible=_box(300, 200, 20, 10)),  # no score, amodal, 3D
    ]
    return result


def test_the_module_found_is_the_test_package() -> None:
    assert vision_msgs() is vm and "test_vision_msgs" in vm.__file__


def test_visible_and_amodal_boxes_as_detection2d_arrays() -> None:
    result = _result()
    visible = detections_2d(vm, result)
    assert isinstance(visible, vm.Detection2DArray) and visible.header == result.header
    first, second = visible.detections
    for det in (first, second):
        assert det.header == result.header and det.id == "r-9"
        (hyp,) = det.results
        assert hyp.hypothesis.class_id == "the mug behind the laptop"
    assert first.results[0].hypothesis.score == 0.75
    assert second.results[0].hypothesis.score == 1.0  # no engine confidence: documented 1.0
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (100, 80)
    assert (first.bbox.size_x, first.bbox.size_y, first.bbox.center.theta) == (40, 30, 0.0)
    amodal = detections_2d(vm, result, amodal=True)
    (only,) = amodal.detections  # the second object has no amodal box
    assert (only.bbox.center.position.y, only.bbox.size_y) == (90, 50)


def test_3d_boxes_as_a_detection3d_array() -> None:
    result = _result()
    array = detections_3d(vm, result)
    (det,) = array.detections  # the second object has no 3D
    assert isinstance(det, vm.Detection3D) and det.id == "r-9" and array.header == result.header
    assert det.bbox.center.position.z == 0.9 and det.bbox.size.x == 0.08
    assert det.bbox.center.orientation.w == 1.0
    assert det.results[0].pose.pose.position.z == 0.9  # the hypothesis' pose: the box centre


def test_the_node_publishes_the_three_arrays_with_each_answer() -> None:
    harness = Harness()
    try:
        with ScriptedOpenAIServer(reply=box_reply, model="EGM-test") as server:
            params = dict(
                backend="openai",
                base_url=server.base_url,
                request_timeout=10.0,
                model_family="qwen3_vl",
                use_depth=True,
            )
            overrides = [Parameter(k, value=v) for k, v in params.items()]
            harness.add(
                GroundingNode(
                    context=harness.context, namespace="/cam", parameter_overrides=overrides
                )
            )
            listener = harness.probe("/listener")
            got: dict[str, list] = {"detections": [], "amodal_detections": [], "detections_3d": []}
            for topic, kind in (
                ("detections", vm.Detection2DArray),
                ("amodal_detections", vm.Detection2DArray),
                ("detections_3d", vm.Detection3DArray),
            ):
                listener.node.create_subscription(
                    kind, f"/cam/{topic}", got[topic].append, RELIABLE
                )
            result = ask_with_depth(harness)
            wait_for(lambda: all(got.values()))
    finally:
        harness.close()
    assert result.status == GroundingResult.STATUS_OK and result.objects[0].has_3d
    (visible,), (amodal,), (box3d,) = (got[t][0].detections for t in got)
    assert visible.id == amodal.id == box3d.id == result.request_id
    assert visible.results[0].hypothesis.class_id == "the mug"
    assert visible.bbox.size_x == pytest.approx(128) and amodal.bbox.size_y == pytest.approx(192)
    assert box3d.bbox.center.position.z == pytest.approx(0.8, abs=0.002)
    assert box3d.bbox.size.x == pytest.approx(128 * 0.8 / FX, abs=0.005)
    assert got["detections"][0].header == result.header
