"""``egm-demo`` (``make demo``): the whole loop on this machine with the embedded default.

A simulated camera (``sim_camera``) publishes synthetic occlusion scenes with camera_info, the
grounding node (``backend: embedded``, EGM-Tiny on the CPU) answers a scripted sequence of
visible and amodal commands over ROS topics, and the demo prints each result as it arrives and
writes annotated PNGs into the folder it names at the end. On a robot the same demo runs with
``ros2 launch egm_ros demo.launch.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from egm_ros.core.types import Status
from egm_ros.demo.client import DemoClient
from egm_ros.engines import no_progress_bars
from egm_ros.node.grounding_node import GroundingNode
from egm_ros.node.sim_camera import SimCamera


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="egm-demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/demo", help="folder for the annotated PNGs")
    p.add_argument("--scenes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="first scene's seed")
    p.add_argument("--backend", default="embedded")
    p.add_argument("--model", default="")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole demo")
    p.add_argument(
        "--depth",
        action="store_true",
        help="the camera publishes depth, the node lifts each answer to 3D (use_depth), and each "
        "result's 3D error against the scene's ground truth is printed",
    )
    return p


def _grounding_node(args: argparse.Namespace) -> GroundingNode:
    """The node as the demo runs it: frames kept long enough for slow CPUs, exact stamps."""
    return GroundingNode(
        parameter_overrides=[
            Parameter("backend", value=args.backend),
            Parameter("model", value=args.model),
            Parameter("request_timeout", value=120.0),
            Parameter("frame_buffer_seconds", value=60.0),
            Parameter("frame_stamp_tolerance", value=0.0),
            Parameter("queue_size", value=16),
            Parameter("max_new_tokens", value=256),
            Parameter("use_depth", value=args.depth),
            Parameter("depth_stamp_tolerance", value=0.0),  # the camera stamps both alike
        ]
    )


def _camera(seed: int, size: int, depth: bool) -> SimCamera:
    return SimCamera(
        parameter_overrides=[
            Parameter("rate", value=5.0),
            Parameter("width", value=size),
            Parameter("height", value=size),
            Parameter("seed", value=seed),
            Parameter("scene_period", value=3.0),
            Parameter("publish_depth", value=depth),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    no_progress_bars()  # the engine's worker process inherits it
    rclpy.init()
    out = Path(args.out).resolve()
    size = 224
    print(f"egm_ros demo: {args.scenes} synthetic scenes, backend {args.backend}", flush=True)
    print("loading the model (EGM-Tiny, CPU) ...", flush=True)
    t0 = time.monotonic()
    grounder = _grounding_node(args)
    if grounder.engine is None:
        print(
            f"egm-demo: error: the grounding node could not load its engine: "
            f"{grounder.engine_state}",
            file=sys.stderr,
        )
        grounder.destroy_node()
        rclpy.try_shutdown()
        return 3
    print(
        f"model loaded in {time.monotonic() - t0:.1f} s: {grounder.engine.model_name}", flush=True
    )
    camera = _camera(args.seed, size, args.depth)
    client = DemoClient(out, seed=args.seed, scenes=args.scenes, scene_size=size, depth=args.depth)
    executor = SingleThreadedExecutor()  # as grounding_node runs: every callback is short
    for node in (grounder, camera, client):
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    finished = client.done.wait(args.timeout)
    grounder.on_shutdown(None)
    executor.shutdown(timeout_sec=5)
    # spin() must have returned before the nodes and the context go: a spinning thread still in
    # rclpy's wait at interpreter exit aborted the process ("terminate called without an active
    # exception", 1 run in 3 on a loaded machine).
    spinner.join(timeout=30)
    for node in (client, camera, grounder):
        node.destroy_node()
    rclpy.try_shutdown()
    ok = sum(Status.from_code(r.status) is Status.OK for _, r in client.results)
    print(
        f"\n{len(client.results)} results ({ok} ok) for {client.expected()} commands; "
        f"annotated pictures in {args.out}",  # as given: out/demo by default
        flush=True,
    )
    if args.depth:
        print(client.scores_3d.summary(), flush=True)
    if not finished:
        print("egm-demo: error: not every command was answered in time", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
