"""The grounding node with use_depth, in-process: it subscribes to depth/image_raw and
depth/camera_info (relative to its namespace, remappable, sensor-data QoS) only when use_depth
is on, and its results carry 3D boxes; with use_depth off nothing changes. Without vision_msgs
(as here) it says so in one info line at start-up."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from depth_frames import FX, H, W, ask_with_depth, box_reply  # noqa: E402
from node_harness import make_image, wait_for  # noqa: E402
from openai_server import ScriptedOpenAIServer  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from egm_ros.msg import GroundingCommand, GroundingResult  # noqa: E402
from egm_ros.node.grounding_node import GroundingNode  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture
def server():
    with ScriptedOpenAIServer(reply=box_reply, model="EGM-test") as srv:
        yield srv


def grounding_node(harness, server, namespace: str = "/cam", remaps=(), **params) -> GroundingNode:
    values = dict(
        backend="openai", base_url=server.base_url, request_timeout=10.0, model_family="qwen3_vl"
    )
    values.update(params)
    cli = ["--ros-args", *[a for r in remaps for a in ("-r", r)]] if remaps else None
    node = GroundingNode(
        context=harness.context,
        namespace=namespace,
        cli_args=cli,
        parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
    )
    return harness.add(node)


def subscriptions(node: GroundingNode) -> set[str]:
    """The topics the node subscribes to, resolved (namespace, remaps), from the node itself:
    the graph's by-node query may answer for a same-named node of an earlier test."""
    return {sub.topic_name for sub in node.subscriptions}


def test_use_depth_subscribes_to_depth_and_gives_3d(server, harness, capfd) -> None:
    node = grounding_node(harness, server, use_depth=True)
    result = ask_with_depth(harness)
    assert result.status == GroundingResult.STATUS_OK and result.status_message == "ok"
    (obj,) = result.objects
    assert obj.has_3d and obj.amodal_predicted
    assert obj.visible_3d.center.position.z == pytest.approx(0.8, abs=0.002)
    assert obj.amodal_3d.size.y == pytest.approx(192 * 0.8 / FX, abs=0.005)
    assert {"/cam/depth/image_raw", "/cam/depth/camera_info"} <= subscriptions(node)
    # vision_msgs is not installed here: one info line at start-up says so.
    lines = [line for line in capfd.readouterr().err.splitlines() if "vision_msgs" in line]
    assert len(lines) == 1 and "INFO" in lines[0] and "ros-jazzy-vision-msgs" in lines[0]


def test_depth_topics_are_remappable(server, harness) -> None:
    grounding_node(harness, server, remaps=["depth/image_raw:=/aligned/depth"], use_depth=True)
    result = ask_with_depth(harness, depth_topic="/aligned/depth")
    assert result.objects[0].has_3d


def test_without_use_depth_nothing_changes(server, harness) -> None:
    node = grounding_node(harness, server)
    probe = harness.probe("/cam")
    wait_for(probe.connected)
    probe.image_pub.publish(make_image(W, H, Time(sec=3)))
    time.sleep(0.3)
    probe.gcommand_pub.publish(GroundingCommand(prompt="the mug"))
    (result,) = probe.wait_results(1)
    assert result.status_message == "ok" and not result.objects[0].has_3d
    assert "/cam/image_raw" in subscriptions(node)
    assert not any("depth" in name for name in subscriptions(node))
    assert node.path.depth is None
