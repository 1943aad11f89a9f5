"""A harness for in-process tests of the grounding node: a private rclpy context, the node under
test and a probe node (camera + command publisher, result subscriber) spinning in a background
executor, and helpers to wait for results."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from egm_ros.core.images import rgb_to_image_fields
from egm_ros.msg import GroundingCommand, GroundingResult
from egm_ros.node.grounding_node import GroundingNode

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def make_image(
    width: int, height: int, stamp: Time, frame_id: str = "camera", encoding: str = "rgb8"
) -> Image:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, :, 0] = np.arange(width, dtype=np.uint8)[None, :]
    fields = rgb_to_image_fields(rgb, encoding)
    msg = Image(
        height=fields["height"],
        width=fields["width"],
        encoding=fields["encoding"],
        is_bigendian=int(fields["is_bigendian"]),
        step=fields["step"],
    )
    msg.data = fields["data"]
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


class Probe:
    """Publishes camera frames and commands into ``namespace`` and collects its results."""

    def __init__(self, context: Context, namespace: str = "") -> None:
        self.node = Node(f"probe{namespace.replace('/', '_')}", context=context)
        prefix = f"{namespace}/" if namespace else ""
        self.result_topic = f"{prefix}result"
        self.results: list[GroundingResult] = []
        self.image_pub = self.node.create_publisher(
            Image, f"{prefix}image_raw", qos_profile_sensor_data
        )
        self.command_pub = self.node.create_publisher(String, f"{prefix}command", RELIABLE)
        self.gcommand_pub = self.node.create_publisher(
            GroundingCommand, f"{prefix}grounding_command", RELIABLE
        )
        self.node.create_subscription(
            GroundingResult, f"{prefix}result", self.results.append, RELIABLE
        )

    def connected(self) -> bool:
        """The grounding node subscribes to our topics and publishes results to us."""
        return (
            self.command_pub.get_subscription_count() > 0
            and self.image_pub.get_subscription_count() > 0
            and self.gcommand_pub.get_subscription_count() > 0
            and self.node.count_publishers(self.result_topic) > 0
        )

    def compressed_publisher(self):
        """A publisher of ``image_raw/compressed`` (for ``compressed_input`` nodes), returned
        once the node subscribes to it and to the commands."""
        prefix = self.result_topic[: -len("result")]
        frames = self.node.create_publisher(
            CompressedImage, f"{prefix}image_raw/compressed", qos_profile_sensor_data
        )
        wait_for(
            lambda: (
                frames.get_subscription_count() > 0
                and self.command_pub.get_subscription_count() > 0
            )
        )
        return frames

    def wait_results(self, count: int, timeout: float = 20.0) -> list[GroundingResult]:
        wait_for(lambda: len(self.results) >= count, timeout)
        return list(self.results)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


class Harness:
    """Nodes spinning in a background thread of a private context, on one executor thread as
    ``grounding_node``'s ``main`` runs them: a callback that waited (an action goal, say)
    would hold every other callback, and the tests would show it."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Node] = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races end the spin
            pass

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def grounding_node(self, namespace: str = "", **params) -> GroundingNode:
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        node = GroundingNode(
            context=self.context, namespace=namespace, parameter_overrides=overrides
        )
        return self.add(node)

    def probe(self, namespace: str = "") -> Probe:
        probe = Probe(self.context, namespace)
        self.add(probe.node)
        return probe

    def close(self) -> None:
        for node in self.nodes:
            if isinstance(node, GroundingNode):
                node.on_shutdown(None)
        self.executor.shutdown(timeout_sec=5)
        for node in self.nodes:
            node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(5)
