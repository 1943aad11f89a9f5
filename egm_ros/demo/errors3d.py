"""The demo's 3D scoring (``egm-demo --depth``): each result's 3D boxes against the simulated
scene's ground truth (:mod:`egm_ros.data.scene_depth`), and a summary over the run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from egm_ros.core.types import Box3D


def box3d_from_msg(msg) -> Box3D:
    """An ``egm_ros/BoundingBox3D`` message as a Box3D."""
    p, s = msg.center.position, msg.size
    return Box3D((p.x, p.y, p.z), (s.x, s.y, s.z))


@dataclass(frozen=True)
class Error3D:
    """How far a 3D box is from the truth, in metres: its centre, and its size per axis."""

    centre: float
    size: tuple[float, float, float]

    @classmethod
    def of(cls, found: Box3D, truth: Box3D) -> Error3D:
        centre = float(np.linalg.norm(np.subtract(found.center, truth.center)))
        size = tuple(float(abs(a - b)) for a, b in zip(found.size, truth.size, strict=True))
        return cls(centre, size)  # type: ignore[arg-type]

    def text(self) -> str:
        sx, sy, sz = (100 * v for v in self.size)
        return f"centre {100 * self.centre:.1f} cm off, size off by {sx:.1f}/{sy:.1f}/{sz:.1f} cm"


@dataclass
class Scores3D:
    """The run's 3D errors: visible and amodal boxes, with the 2D IoU of the answer they
    belong to (a wrong object's 3D box is far off for that reason, not the depth's)."""

    visible: list[tuple[Error3D, float]]
    amodal: list[tuple[Error3D, float]]
    without: list[str]

    def summary(self) -> str:
        lines = [f"3D: {len(self.visible)} results with 3D, {len(self.without)} without"]
        for name, errors in (("visible", self.visible), ("amodal", self.amodal)):
            for label, chosen in (
                ("all", errors),
                ("2D IoU >= 0.5", [(e, i) for e, i in errors if i >= 0.5]),
            ):
                if chosen:
                    centre = np.array([e.centre for e, _ in chosen]) * 100
                    size = np.array([e.size for e, _ in chosen]) * 100
                    lines.append(
                        f"  {name} 3D boxes, {label} ({len(chosen)}): centre error median "
                        f"{np.median(centre):.1f} cm, max {centre.max():.1f} cm; size error "
                        f"median x/y/z {'/'.join(f'{v:.1f}' for v in np.median(size, axis=0))} cm"
                    )
        lines += [f"  no 3D: {reason}" for reason in self.without]
        return "\n".join(lines)
