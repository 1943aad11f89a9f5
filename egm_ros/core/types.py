"""Plain data types shared by the core, the engines, the CLI and the ROS node.

Nothing here imports ROS: the node converts these to and from ``egm_ros.msg`` types.
Boxes are always corner boxes ``(x1, y1, x2, y2)`` in **source-image pixels** (floats);
the centre/size layout of the ROS message is made only at the ROS boundary.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field


class Mode(enum.StrEnum):
    """What box the caller wants: only the visible part, or visible plus full extent."""

    VISIBLE = "visible"
    AMODAL = "amodal"

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        """Accept ``"visible"``/``"amodal"`` in any case; raise ``ValueError`` otherwise."""
        if isinstance(value, Mode):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"mode must be 'visible' or 'amodal', got {value!r}") from None


class Status(enum.StrEnum):
    """Outcome of one grounding request. Values are the CLI's JSON ``status`` strings.

    The numeric codes (``code``) are the ``GroundingResult.STATUS_*`` constants of the
    ROS message, so both sides stay in one place.
    """

    OK = "ok"
    NOT_FOUND = "not_found"
    INVALID_INPUT = "invalid_input"
    MALFORMED_OUTPUT = "malformed_output"
    ENGINE_ERROR = "engine_error"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    TIMEOUT = "timeout"
    BUSY = "busy"
    NO_FRAME = "no_frame"
    CANCELLED = "cancelled"

    @property
    def code(self) -> int:
        return _STATUS_CODES[self]

    @property
    def is_error(self) -> bool:
        """``ok`` and ``not_found`` are answers; everything else is an error."""
        return self not in (Status.OK, Status.NOT_FOUND)

    @classmethod
    def from_code(cls, code: int) -> Status:
        for status, value in _STATUS_CODES.items():
            if value == code:
                return status
        raise ValueError(f"unknown status code {code}")


_STATUS_CODES: dict[Status, int] = {
    Status.OK: 0,
    Status.NOT_FOUND: 1,
    Status.INVALID_INPUT: 2,
    Status.MALFORMED_OUTPUT: 3,
    Status.ENGINE_ERROR: 4,
    Status.ENGINE_UNAVAILABLE: 5,
    Status.TIMEOUT: 6,
    Status.BUSY: 7,
    Status.NO_FRAME: 8,
    Status.CANCELLED: 9,
}


@dataclass(frozen=True)
class Box:
    """Axis-aligned corner box in pixels; ``x1 <= x2`` and ``y1 <= y2`` always hold."""

    x1: float
    y1: float
    x2: float
    y2: float

    def as_list(self, ndigits: int = 1) -> list[float]:
        return [round(v, ndigits) for v in (self.x1, self.y1, self.x2, self.y2)]

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


@dataclass(frozen=True)
class Box3D:
    """Axis-aligned 3D box in metres in the colour camera's optical frame (x right, y down,
    z forward): centre and full size, the layout of ``vision_msgs/BoundingBox3D``."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]

    @classmethod
    def from_bounds(cls, low: Sequence[float], high: Sequence[float]) -> Box3D:
        """The box between two opposite corners (``low <= high`` on every axis)."""
        (x0, y0, z0), (x1, y1, z1) = (map(float, low), map(float, high))
        return cls(((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2), (x1 - x0, y1 - y0, z1 - z0))

    @property
    def low(self) -> tuple[float, float, float]:
        (cx, cy, cz), (sx, sy, sz) = self.center, self.size
        return (cx - sx / 2, cy - sy / 2, cz - sz / 2)

    @property
    def high(self) -> tuple[float, float, float]:
        (cx, cy, cz), (sx, sy, sz) = self.center, self.size
        return (cx + sx / 2, cy + sy / 2, cz + sz / 2)


@dataclass
class GroundedObject:
    """One target: its visible box and, in amodal mode, its full-extent box.

    ``amodal_predicted`` is true only when the model actually answered the amodal query;
    otherwise ``amodal`` is ``None``. ``visible_3d`` and ``amodal_3d`` are filled only by the
    depth step (:mod:`egm_ros.core.depth`); ``visible_3d`` set means the object has 3D.
    """

    visible: Box | None
    amodal: Box | None = None
    amodal_predicted: bool = False
    label: str = ""
    score: float | None = None
    visible_3d: Box3D | None = None
    amodal_3d: Box3D | None = None


@dataclass
class Latency:
    """Where the time of one request went, in milliseconds."""

    waiting_ms: float = 0.0
    preprocessing_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0


@dataclass
class GroundingOutcome:
    """The ROS-free result of one grounding request (the node maps it to GroundingResult)."""

    status: Status
    message: str = ""
    objects: list[GroundedObject] = field(default_factory=list)
    reasoning: str = ""
    model: str = ""
    tokens: int = 0
    latency: Latency = field(default_factory=Latency)
    mode: Mode = Mode.VISIBLE
    prompt: str = ""
    raw_text: str = ""

    def to_json_dict(self) -> dict:
        """The CLI's ``--json`` object (keys are a user-facing contract)."""
        objects = []
        for obj in self.objects:
            entry: dict = {
                "visible": obj.visible.as_list() if obj.visible else None,
                "label": obj.label,
            }
            if self.mode is Mode.AMODAL:
                entry["amodal"] = obj.amodal.as_list() if obj.amodal else None
            if obj.score is not None:
                entry["score"] = obj.score
            objects.append(entry)
        return {
            "status": self.status.value,
            "message": self.message,
            "mode": self.mode.value,
            "prompt": self.prompt,
            "objects": objects,
            "reasoning": self.reasoning,
            "model": self.model,
            "latency_ms": round(self.latency.total_ms, 1),
            "latency": {
                "waiting_ms": round(self.latency.waiting_ms, 2),
                "preprocessing_ms": round(self.latency.preprocessing_ms, 2),
                "inference_ms": round(self.latency.inference_ms, 2),
                "total_ms": round(self.latency.total_ms, 2),
            },
            "tokens": self.tokens,
        }


class GroundingError(Exception):
    """An error with a status: raised by engines and image conversion, caught by the
    grounder, which turns it into a :class:`GroundingOutcome` (callers never see a raise)."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def detached(self) -> GroundingError:
        """A copy without a traceback, to store in a future or to raise again from a frame that
        holds that future. The original's traceback holds the frames it went through, whose
        locals hold the future that holds it: a reference cycle that kept a whole batch (frame,
        pixel values, KV cache) alive until Python's cyclic garbage collector happened to run,
        which on a busy node was rarely (issue 21's memory growth)."""
        return GroundingError(self.status, self.message)
