"""The 3D step alone on the synthetic scenes: every object's ground-truth visible and amodal 2D
boxes lifted with the scene's simulated depth (:mod:`egm_ros.data.scene_depth`), against its
ground-truth 3D boxes. What the depth step adds when the 2D boxes are right (``egm-demo --depth``
shows it behind the embedded model's 2D answers).

Run: ``.venv/bin/python -m dev.depth_eval [--scenes 150] [--size 224x224]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from egm_ros.core.depth import decode_depth, lift_object
from egm_ros.core.types import GroundedObject
from egm_ros.data.scene_depth import pinhole_intrinsics, scene_depth
from egm_ros.data.scenes import generate_scene
from egm_ros.demo.errors3d import Error3D


def evaluate(scenes: int, width: int, height: int) -> dict[str, list[tuple[Error3D, bool]]]:
    """Per object: the visible and amodal boxes' errors, and whether the object is partly
    hidden by another."""
    out: dict[str, list[tuple[Error3D, bool]]] = {"visible": [], "amodal": []}
    for seed in range(scenes):
        scene = generate_scene(seed, width=width, height=height)
        k = pinhole_intrinsics(width, height)
        truth = scene_depth(scene, k)
        mm = np.round(truth.depth * 1000).astype("<u2")
        depth = decode_depth("16UC1", width, height, width * 2, mm.tobytes())
        for obj in scene.objects:
            found = GroundedObject(obj.visible, obj.amodal, amodal_predicted=True)
            lift_object(depth, k, found)
            assert found.visible_3d is not None and found.amodal_3d is not None
            hidden = bool(obj.occlusions)
            out["visible"].append((Error3D.of(found.visible_3d, truth.visible[obj.index]), hidden))
            out["amodal"].append((Error3D.of(found.amodal_3d, truth.amodal[obj.index]), hidden))
    return out


def table(results: dict[str, list[tuple[Error3D, bool]]]) -> str:
    lines = ["box      objects  centre error cm: p50    p90    max   size error cm p50 x/y/z"]
    for name, rows in results.items():
        for label, chosen in (("all", rows), ("partly hidden", [r for r in rows if r[1]])):
            centre = np.array([e.centre for e, _ in chosen]) * 100
            size = np.median(np.array([e.size for e, _ in chosen]) * 100, axis=0)
            p50, p90 = np.percentile(centre, [50, 90])
            lines.append(
                f"{name:8} {label:13} {len(chosen):4}  {p50:5.2f}  {p90:5.2f}  {centre.max():5.2f}"
                f"   {'/'.join(f'{v:.2f}' for v in size)}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=150)
    parser.add_argument("--size", default="224x224", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"3D step on ground-truth 2D boxes, {args.scenes} scenes at {width}x{height}")
    print(table(evaluate(args.scenes, width, height)))


if __name__ == "__main__":
    main()
