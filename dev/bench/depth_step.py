"""The 3D step's cost (issue 18, ``use_depth``): what one answered command adds when the node
lifts it to 3D, as the node does it (``DepthInput.lift``): the depth frame matched to the colour
frame by stamp, decoded as a view on the message, the target's surface chosen in its visible
box, the visible and amodal 3D boxes. At 640x480, for 16UC1 and 32FC1 depth, on a synthetic
table-top scene (:mod:`egm_ros.data.scene_depth`) with two targets: one of the scene's objects
(about 100 pixels a side) and a quarter of the frame (320x240, read on a thinned grid).

Run alone: ``.venv/bin/python -m dev.bench.depth_step [--repeats N]`` (``make bench`` runs it
with the overhead rows).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from dev.bench.overhead import timed_wall_and_cpu
from dev.bench.report import format_table
from dev.stats import percentile
from egm_ros.core.types import Box, GroundedObject, GroundingOutcome, Mode, Status

WIDTH, HEIGHT = 640, 480
#: The goal of issue 18: the 3D step at most this many ms (p50) at 640x480.
GOAL_MS = 2.0


def targets(scene) -> dict[str, GroundedObject]:
    """The scene's largest object (its visible and amodal boxes) and a quarter-frame box."""
    obj = max(scene.objects, key=lambda o: o.amodal.area)
    quarter = Box(160, 120, 480, 360)
    return {
        "scene object": GroundedObject(obj.visible, obj.amodal, amodal_predicted=True),
        "quarter frame": GroundedObject(quarter, quarter, amodal_predicted=True),
    }


def _lift(encoding: str, depth_m: np.ndarray, obj: GroundedObject) -> Callable[[], object]:
    """One lift as the node makes it (a fresh outcome each call, as each command has)."""
    from std_msgs.msg import Header

    from egm_ros.node.depth_input import DepthInput
    from egm_ros.node.sim_camera import depth_image_msg, pinhole_camera_info

    header = Header(frame_id="camera")
    header.stamp.sec = 100
    depth = DepthInput(60.0)
    msg = depth_image_msg(depth_m, encoding, header)
    msg.header.stamp = header.stamp
    depth.add_frame(msg)
    depth.set_info(pinhole_camera_info(WIDTH, HEIGHT, "camera"))

    def run() -> object:
        outcome = GroundingOutcome(Status.OK, objects=[copy.copy(obj)], mode=Mode.AMODAL)
        depth.lift(outcome, header, (WIDTH, HEIGHT), 0.05)
        assert outcome.objects[0].visible_3d is not None, outcome.message
        return outcome

    return run


def run(repeats: int, seed: int = 100) -> dict[str, Any]:
    """The rows of the 3D step: per depth encoding and target, p50/p95 wall and CPU ms."""
    from egm_ros.data.scene_depth import scene_depth
    from egm_ros.data.scenes import generate_scene

    scene = generate_scene(seed, width=WIDTH, height=HEIGHT)
    depth_m = scene_depth(scene).depth
    rows = []
    for encoding in ("16UC1", "32FC1"):
        for name, obj in targets(scene).items():
            wall, cpu = timed_wall_and_cpu(_lift(encoding, depth_m, obj), repeats)
            rows.append(
                {
                    "resolution": f"{WIDTH}x{HEIGHT}",
                    "encoding": encoding,
                    "target": name,
                    "box_px": f"{round(obj.visible.width)}x{round(obj.visible.height)}",
                    "p50_ms": round(percentile(list(wall), 50), 3),
                    "p95_ms": round(percentile(list(wall), 95), 3),
                    "cpu_p50_ms": round(percentile(list(cpu), 50), 3),
                }
            )
    return {"repeats": repeats, "goal_p50_ms": GOAL_MS, "rows": rows}


def table(section: dict[str, Any], fmt: Callable[..., str] = format_table) -> str:
    headers = ("resolution", "depth", "target", "box", "p50 ms", "p95 ms", "CPU p50 ms")
    rows = [
        (
            r["resolution"],
            r["encoding"],
            r["target"],
            r["box_px"],
            r["p50_ms"],
            r["p95_ms"],
            r["cpu_p50_ms"],
        )
        for r in section["rows"]
    ]
    return fmt(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    section = run(args.repeats)
    print(f"3D step (use_depth), {args.repeats} repeats per row")
    print(table(section))


if __name__ == "__main__":
    main()
