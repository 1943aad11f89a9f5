"""The soak camera's pictures: the project's synthetic table-top scenes at the camera's size,
with the referring expressions that name one object in each, so an ``ok`` from a model means
it answered about the scene it was shown (flat frames would make every answer ``not_found``).

ROS-free: the driver turns :attr:`SceneSet.frames` into messages."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from egm_ros.data.expressions import expressions
from egm_ros.data.scenes import MIN_SIZE, generate_scene


@dataclass(frozen=True)
class SoakScene:
    """One scene: its pixels at the camera's size and the expressions that name one object."""

    seed: int
    rgb: np.ndarray  # height x width x 3 uint8
    commands: tuple[str, ...]


def scene_at(seed: int, width: int, height: int) -> SoakScene:
    """Scene ``seed`` rendered at ``width`` x ``height``; a side under the generator's 224 is
    rendered larger and scaled down (as ``sim_camera`` does), the expressions stay true."""
    scale = max(1.0, MIN_SIZE / min(width, height))
    w, h = round(width * scale), round(height * scale)
    scene = generate_scene(seed, width=w, height=h)
    rgb = scene.image
    if (w, h) != (width, height):
        import cv2

        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    texts = tuple(dict.fromkeys(e.text for e in expressions(scene)))  # unique, in order
    return SoakScene(seed, np.ascontiguousarray(rgb), texts)


class SceneSet:
    """``count`` scenes shown in turn, each for ``period`` seconds of frames, and a command
    about the one on show. Scenes without an expression are skipped."""

    def __init__(self, count: int, width: int, height: int, seed: int = 0) -> None:
        self.scenes: list[SoakScene] = []
        candidate = seed
        while len(self.scenes) < count:
            scene = scene_at(candidate, width, height)
            if scene.commands:
                self.scenes.append(scene)
            candidate += 1

    def index_at(self, frame: int, frames_per_scene: int) -> int:
        """Which scene frame number ``frame`` shows."""
        return (frame // max(1, frames_per_scene)) % len(self.scenes)

    def command(self, index: int, rng: random.Random) -> str:
        """An expression naming one object of scene ``index``."""
        return rng.choice(self.scenes[index].commands)
