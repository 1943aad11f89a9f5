"""The demo's scripted user: watches the simulated camera, asks the grounding node about each
scene (visible and amodal commands, pinned to a frame of that scene by ``frame_stamp``), prints
every result as it arrives with its IoU against the scene's ground truth, and writes annotated
PNGs (visible box solid, amodal dashed, the command as caption).

It knows the ground truth because it regenerates the camera's scenes from the same seed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import UInt32

from egm_ros.core.annotate import draw_result, save_png
from egm_ros.core.geometry import center_size_to_box, iou, scale_box
from egm_ros.core.images import image_to_rgb
from egm_ros.core.types import Box, Box3D, GroundedObject, Status
from egm_ros.data.expressions import make_samples
from egm_ros.data.scene_depth import scene_depth
from egm_ros.data.scenes import generate_scene
from egm_ros.demo.errors3d import Error3D, Scores3D, box3d_from_msg
from egm_ros.msg import GroundingCommand, GroundingResult


@dataclass
class _Asked:
    scene: int
    command: str
    amodal: bool
    truth_visible: Box
    truth_amodal: Box
    frame: Image
    sent_at: float
    truth_3d: tuple[Box3D, Box3D] | None = None  # visible, amodal (with --depth)


def _box(msg) -> Box | None:
    if msg.size_x <= 0 or msg.size_y <= 0:
        return None
    return center_size_to_box(msg.center.position.x, msg.center.position.y, msg.size_x, msg.size_y)


class DemoClient(Node):
    def __init__(
        self,
        out_dir: str | Path,
        *,
        seed: int = 0,
        scenes: int = 3,
        scene_size: int = 224,
        depth: bool = False,
        **kwargs,
    ) -> None:
        super().__init__("demo_client", **kwargs)
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.seed, self.scenes, self.scene_size = seed, scenes, scene_size
        self.depth = depth
        self.scores_3d = Scores3D([], [], [])
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._command_pub = self.create_publisher(GroundingCommand, "grounding_command", reliable)
        self.create_subscription(GroundingResult, "result", self._on_result, reliable)
        self.create_subscription(Image, "image_raw", self._on_image, qos_profile_sensor_data)
        self.create_subscription(UInt32, "scene_index", self._on_scene, 10)
        self._scene = -1
        self._asked_scenes: set[int] = set()
        self._pending: dict[str, _Asked] = {}
        self.results: list[tuple[_Asked, GroundingResult]] = []
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._ids = 0

    def expected(self) -> int:
        return 2 * self.scenes

    def _on_scene(self, msg: UInt32) -> None:
        self._scene = int(msg.data)

    def _on_image(self, msg: Image) -> None:
        scene = self._scene
        if scene < 0 or scene >= self.scenes or scene in self._asked_scenes:
            return
        self._asked_scenes.add(scene)
        truth = generate_scene(self.seed + scene, size=self.scene_size)
        truth_3d = scene_depth(truth) if self.depth else None
        rng = np.random.default_rng(1000 + scene)
        # One visible and one amodal command per scene; the amodal one prefers a partly hidden
        # target, whose full box differs from its visible one.
        visible = make_samples(truth, rng, amodal=False, per_scene=1)
        hidden = make_samples(truth, rng, amodal=True, per_scene=1)
        for amodal, sample in [(False, s) for s in visible] + [(True, s) for s in hidden]:
            target = truth.objects[sample.target]
            self._ids += 1
            request_id = f"demo-{self._ids}"
            with self._lock:
                self._pending[request_id] = _Asked(
                    scene,
                    sample.expression,
                    amodal,
                    target.visible,
                    target.amodal,
                    msg,
                    time.monotonic(),
                    truth_3d and (truth_3d.visible[sample.target], truth_3d.amodal[sample.target]),
                )
            mode = GroundingCommand.MODE_AMODAL if amodal else GroundingCommand.MODE_VISIBLE
            self._command_pub.publish(
                GroundingCommand(
                    prompt=sample.expression,
                    mode=mode,
                    request_id=request_id,
                    frame_stamp=msg.header.stamp,
                )
            )
            print(
                f"  scene {scene}: asked {'amodal ' if amodal else 'visible'} "
                f"'{sample.expression}'",
                flush=True,
            )

    def _on_result(self, result: GroundingResult) -> None:
        with self._lock:
            asked = self._pending.pop(result.request_id, None)
        if asked is None:
            return
        self.results.append((asked, result))
        status = Status.from_code(result.status)
        objects = [
            GroundedObject(
                visible=_box(o.visible),
                amodal=_box(o.amodal) if o.amodal_predicted else None,
                amodal_predicted=o.amodal_predicted,
                label=o.label,
            )
            for o in result.objects
        ]
        line = (
            f"[{len(self.results)}/{self.expected()}] scene {asked.scene} "
            f"{'amodal ' if asked.amodal else 'visible'} '{asked.command}': {status.value}"
        )
        if objects and objects[0].visible is not None:
            v = objects[0].visible
            line += (
                f"  visible {[round(x) for x in v.as_list()]} "
                f"(IoU {iou(v, asked.truth_visible):.2f})"
            )
        if objects and objects[0].amodal is not None:
            a = objects[0].amodal
            line += (
                f"  amodal {[round(x) for x in a.as_list()]} (IoU {iou(a, asked.truth_amodal):.2f})"
            )
        line += f"  {result.latency.total_ms:.0f} ms, {result.generated_tokens} tokens"
        if status.is_error:
            line += f" ({result.status_message})"
        print(line, flush=True)
        if asked.truth_3d is not None and status is Status.OK:
            print(f"      {self._score_3d(asked, result, objects)}", flush=True)
        frame = asked.frame
        rgb = image_to_rgb(frame.encoding, frame.width, frame.height, frame.step, frame.data)
        scale = max(1, 448 // max(rgb.shape[:2]))  # small frames are drawn enlarged
        big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
        shown = [
            GroundedObject(
                visible=o.visible and scale_box(o.visible, scale, scale),
                amodal=o.amodal and scale_box(o.amodal, scale, scale),
                amodal_predicted=o.amodal_predicted,
                label=o.label,
            )
            for o in objects
        ]
        drawn = draw_result(big, shown, caption=asked.command, status_text=status.value)
        name = (
            f"scene{asked.scene}_{'amodal' if asked.amodal else 'visible'}_"
            f"{asked.command.replace(' ', '_')}.png"
        )
        save_png(drawn, self.out_dir / name)
        if len(self.results) >= self.expected():
            self.done.set()

    def _score_3d(self, asked: _Asked, result: GroundingResult, objects: list) -> str:
        """The first object's 3D errors against the truth (kept for the summary), as a line."""
        assert asked.truth_3d is not None
        obj, found = result.objects[0], objects[0]
        if not obj.has_3d:
            reason = result.status_message.partition("no 3D: ")[2] or "has_3d false"
            self.scores_3d.without.append(reason)
            return f"3D: none ({reason})"
        truth = asked.truth_amodal if asked.amodal else asked.truth_visible
        box = found.amodal if asked.amodal else found.visible
        overlap = iou(box, truth) if box is not None else 0.0
        visible = Error3D.of(box3d_from_msg(obj.visible_3d), asked.truth_3d[0])
        self.scores_3d.visible.append((visible, overlap))
        line = f"3D visible: {visible.text()}"
        if obj.amodal_predicted:
            amodal = Error3D.of(box3d_from_msg(obj.amodal_3d), asked.truth_3d[1])
            self.scores_3d.amodal.append((amodal, overlap))
            line += f"; 3D amodal: {amodal.text()}"
        return line


def main(argv=None) -> int:
    """``demo_client``: the scripted user on its own (demo.launch.py starts it)."""
    import argparse
    import sys

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.utilities import remove_ros_args

    parser = argparse.ArgumentParser(prog="demo_client")
    parser.add_argument("--out", default="/tmp/egm_demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=3)
    argv = list(argv) if argv is not None else sys.argv
    args = parser.parse_args(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    node = DemoClient(args.out, seed=args.seed, scenes=args.scenes)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not node.done.is_set():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"annotated pictures in {args.out}")
    return 0
