"""The generated interfaces: every message type crosses DDS intact, a Ground goal runs through
an action server with feedback, and the status/mode constants match the ROS-free core."""

from __future__ import annotations

import threading

import pytest

rclpy = pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Point, Pose, Vector3  # noqa: E402
from rclpy.action import ActionClient, ActionServer  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import make_executor, ros_context, spin_until  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from egm_ros.action import Ground  # noqa: E402
from egm_ros.core.types import Mode, Status  # noqa: E402
from egm_ros.msg import (  # noqa: E402
    BoundingBox2D,
    BoundingBox3D,
    GroundedObject,
    GroundingCommand,
    GroundingResult,
    LatencyBreakdown,
    Point2D,
    Pose2D,
)

pytestmark = pytest.mark.ros


def _box(cx: float, cy: float, w: float, h: float) -> BoundingBox2D:
    return BoundingBox2D(center=Pose2D(position=Point2D(x=cx, y=cy), theta=0.0), size_x=w, size_y=h)


def _result() -> GroundingResult:
    result = GroundingResult()
    result.header.stamp = Time(sec=12, nanosec=345)
    result.header.frame_id = "camera_optical"
    result.request_id = "req-1"
    result.command = "the mug behind the laptop"
    result.mode = GroundingResult.MODE_AMODAL
    result.status = GroundingResult.STATUS_OK
    result.status_message = "ok"
    result.objects = [
        GroundedObject(
            label="mug",
            has_score=True,
            score=0.75,
            visible=_box(100.0, 80.0, 40.0, 30.0),
            amodal_predicted=True,
            amodal=_box(100.0, 90.0, 40.0, 50.0),
        )
    ]
    result.reasoning = "The mug is partly hidden by the laptop </think>"
    result.model = "JamesZGQ/EGM-8B"
    result.generated_tokens = 321
    result.latency = LatencyBreakdown(
        waiting_ms=1.0, preprocessing_ms=2.0, inference_ms=700.0, total_ms=703.0
    )
    result.image_width = 640
    result.image_height = 480
    return result


def _box3d(x: float, y: float, z: float, sx: float, sy: float, sz: float) -> BoundingBox3D:
    return BoundingBox3D(center=Pose(position=Point(x=x, y=y, z=z)), size=Vector3(x=sx, y=sy, z=sz))


SAMPLES = [
    Point2D(x=1.5, y=-2.0),
    Pose2D(position=Point2D(x=3.0, y=4.0), theta=0.0),
    _box(10.0, 20.0, 30.0, 40.0),
    GroundedObject(label="ball", visible=_box(1.0, 2.0, 3.0, 4.0)),
    _box3d(0.1, -0.2, 0.9, 0.08, 0.1, 0.05),
    GroundedObject(
        label="mug",
        visible=_box(1.0, 2.0, 3.0, 4.0),
        amodal_predicted=True,
        amodal=_box(1.0, 3.0, 3.0, 6.0),
        has_3d=True,
        visible_3d=_box3d(0.1, -0.2, 0.9, 0.08, 0.06, 0.02),
        amodal_3d=_box3d(0.1, -0.18, 0.93, 0.08, 0.1, 0.08),
    ),
    LatencyBreakdown(waiting_ms=1.0, preprocessing_ms=2.0, inference_ms=3.0, total_ms=6.0),
    GroundingCommand(
        prompt="the red mug",
        mode=GroundingCommand.MODE_AMODAL,
        request_id="abc",
        frame_stamp=Time(sec=5, nanosec=6),
    ),
    _result(),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda m: type(m).__name__)
def test_message_round_trips_over_dds(sample) -> None:
    msg_type = type(sample)
    received: list = []
    with ros_context() as context:
        node = rclpy.create_node("interfaces_probe", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        topic = f"probe_{msg_type.__name__.lower()}"
        node.create_subscription(msg_type, topic, received.append, qos)
        publisher = node.create_publisher(msg_type, topic, qos)
        executor = make_executor(context)
        executor.add_node(node)

        def published_and_received() -> bool:
            if not received:
                publisher.publish(sample)
            return bool(received)

        assert spin_until(executor, published_and_received, timeout=10.0)
        executor.shutdown()
        node.destroy_node()
    assert received[0] == sample


def test_status_codes_match_the_core() -> None:
    for status in Status:
        constant = getattr(GroundingResult, f"STATUS_{status.name}")
        assert constant == status.code, status
    constants = [name for name in dir(GroundingResult) if name.startswith("STATUS_")]
    assert len(constants) == len(Status)


def test_mode_constants_are_shared_by_command_and_result() -> None:
    assert GroundingCommand.MODE_VISIBLE == GroundingResult.MODE_VISIBLE == 1
    assert GroundingCommand.MODE_AMODAL == GroundingResult.MODE_AMODAL == 2
    assert GroundingCommand.MODE_DEFAULT == 0
    assert {m.value for m in Mode} == {"visible", "amodal"}


def test_ground_action_goal_feedback_and_result() -> None:
    feedback_seen: list = []
    with ros_context() as context:
        server_node = rclpy.create_node("ground_server", context=context)
        client_node = rclpy.create_node("ground_client", context=context)

        def execute(goal_handle):
            goal = goal_handle.request
            for tokens in (8, 16):
                fb = Ground.Feedback(tokens=tokens, partial_reasoning="thinking", elapsed_ms=1.0)
                goal_handle.publish_feedback(fb)
            goal_handle.succeed()
            res = Ground.Result()
            res.result = _result()
            res.result.command = goal.prompt
            res.result.image_width = goal.image.width
            return res

        ActionServer(server_node, Ground, "ground", execute)
        client = ActionClient(client_node, Ground, "ground")
        executor = make_executor(context)
        executor.add_node(server_node)
        executor.add_node(client_node)
        spin_until(executor, client.server_is_ready, timeout=10.0)

        image = Image(width=4, height=2, encoding="rgb8", step=12, data=bytes(24))
        goal = Ground.Goal(prompt="the blue ball", mode=2, image=image, request_id="g1")
        send_future = client.send_goal_async(goal, feedback_callback=feedback_seen.append)
        assert spin_until(executor, send_future.done, timeout=10.0)
        goal_handle = send_future.result()
        assert goal_handle.accepted
        result_future = goal_handle.get_result_async()
        assert spin_until(executor, result_future.done, timeout=10.0)
        result = result_future.result().result.result
        spin_until(executor, lambda: len(feedback_seen) >= 2, timeout=2.0)
        executor.shutdown()
        client.destroy()
        server_node.destroy_node()
        client_node.destroy_node()

    assert result.command == "the blue ball"
    assert result.image_width == 4
    assert result.objects[0].amodal_predicted
    assert [fb.feedback.tokens for fb in feedback_seen] == [8, 16]


def test_messages_are_plain_data_usable_off_the_executor_thread() -> None:
    # Results are built in worker threads in the node: constructing them must not need rclpy
    # to be initialised.
    out: list[GroundingResult] = []
    thread = threading.Thread(target=lambda: out.append(_result()))
    thread.start()
    thread.join()
    assert out[0].objects[0].visible.size_x == 40.0
