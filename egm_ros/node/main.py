"""``grounding_node`` executable: ``grounding_node --ros-args -p backend:=openai -r
__ns:=/front_camera --params-file config/grounding.yaml``. The same entry point serves
``ros2 run egm_ros grounding_node`` and the launch file."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation

#: What rcl calls raise once Ctrl-C has shut the context down (rclpy's own signal handler).
RCLError = rclpy_implementation.RCLError


def main(args: Sequence[str] | None = None) -> int:
    from egm_ros.engines import no_progress_bars

    no_progress_bars()  # before the node imports an engine's libraries
    from egm_ros.node.grounding_node import GroundingNode

    rclpy.init(args=list(args) if args is not None else sys.argv)
    # One thread: every callback is short (requests run on the node's own worker threads,
    # action goals do not wait in a callback). rclpy's MultiThreadedExecutor(4) let commands
    # wait 0.1 to 1.5 s between their arrival and their callback; this one, under 3 ms (bench).
    executor = SingleThreadedExecutor()
    node = None
    try:
        # Built first, started second: a node interrupted while it starts (Ctrl-C during the
        # model load) is already in hand below, so its engine is closed and its rcl handles
        # freed before rclpy shuts down, not by the garbage collector at exit.
        node = GroundingNode(start=False)
        node.start()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # Ctrl-C between configure and activate: rclpy's handler has shut the context down,
        # so the transition can no longer be published.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.on_shutdown(None)
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
