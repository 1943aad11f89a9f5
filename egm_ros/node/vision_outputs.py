"""vision_msgs outputs, for the tools that take detections as input (NVIDIA's FoundationPose and
other pose estimators accept any ``vision_msgs/Detection2DArray``):

- ``detections`` (Detection2DArray): the visible box of each object;
- ``amodal_detections`` (Detection2DArray): the full-extent box of each object of an amodal
  result;
- ``detections_3d`` (Detection3DArray, with ``use_depth``): the visible 3D box of each object
  that has 3D.

One array per answered command (status ok or not_found; a not_found one is empty), stamped with
the colour image's header; one detection per object: ``class_id`` is the command text, ``score``
the engine's confidence where it gives one and 1.0 otherwise (the model named this object as the
command's target), ``id`` the request id. 3D detections also carry the box centre as their
hypothesis' pose.

vision_msgs is optional: it is not installable from PyPI (on a robot: ros-jazzy-vision-msgs).
Without it the node says so in one info line at start-up and publishes none of these.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from egm_ros.core.types import Status

ANSWERED = (Status.OK.code, Status.NOT_FOUND.code)


def vision_msgs() -> ModuleType | None:
    """``vision_msgs.msg``, or None when the package is not installed."""
    try:
        import vision_msgs.msg as module
    except ImportError:
        return None
    return module


def _hypothesis(m: ModuleType, result: Any, obj: Any) -> Any:
    score = float(obj.score) if obj.has_score else 1.0
    return m.ObjectHypothesisWithPose(
        hypothesis=m.ObjectHypothesis(class_id=result.command, score=score)
    )


def detections_2d(m: ModuleType, result: Any, amodal: bool = False) -> Any:
    """A GroundingResult's visible (or amodal) boxes as a ``vision_msgs/Detection2DArray``."""
    array = m.Detection2DArray(header=result.header)
    for obj in result.objects:
        if amodal and not obj.amodal_predicted:
            continue
        box = obj.amodal if amodal else obj.visible
        bbox = m.BoundingBox2D(
            center=m.Pose2D(
                position=m.Point2D(x=box.center.position.x, y=box.center.position.y),
                theta=box.center.theta,
            ),
            size_x=box.size_x,
            size_y=box.size_y,
        )
        array.detections.append(
            m.Detection2D(
                header=result.header,
                results=[_hypothesis(m, result, obj)],
                bbox=bbox,
                id=result.request_id,
            )
        )
    return array


def detections_3d(m: ModuleType, result: Any) -> Any:
    """A GroundingResult's visible 3D boxes as a ``vision_msgs/Detection3DArray``."""
    array = m.Detection3DArray(header=result.header)
    for obj in result.objects:
        if not obj.has_3d:
            continue
        hypothesis = _hypothesis(m, result, obj)
        hypothesis.pose.pose = obj.visible_3d.center
        bbox = m.BoundingBox3D(center=obj.visible_3d.center, size=obj.visible_3d.size)
        detection = m.Detection3D(header=result.header, results=[hypothesis], bbox=bbox)
        detection.id = result.request_id
        array.detections.append(detection)
    return array


class VisionOutputs:
    """The node's vision_msgs publishers (none without vision_msgs)."""

    def __init__(self, node: Any, with_3d: bool, qos: Any) -> None:
        self._node = node
        self._msgs = vision_msgs()
        self._publishers: dict[str, Any] = {}
        if self._msgs is None:
            node.get_logger().info(
                "vision_msgs is not installed: no detections, amodal_detections or "
                "detections_3d outputs (on a robot: ros-jazzy-vision-msgs)"
            )
            return
        m = self._msgs
        self._publishers = {
            "detections": node.create_publisher(m.Detection2DArray, "detections", qos),
            "amodal_detections": node.create_publisher(
                m.Detection2DArray, "amodal_detections", qos
            ),
        }
        if with_3d:
            self._publishers["detections_3d"] = node.create_publisher(
                m.Detection3DArray, "detections_3d", qos
            )

    def publish(self, result: Any) -> None:
        """The arrays of one result, when it is an answer."""
        m, pubs = self._msgs, self._publishers
        if m is None or not pubs or result.status not in ANSWERED:
            return
        pubs["detections"].publish(detections_2d(m, result))
        if result.mode == result.MODE_AMODAL:
            pubs["amodal_detections"].publish(detections_2d(m, result, amodal=True))
        if "detections_3d" in pubs:
            pubs["detections_3d"].publish(detections_3d(m, result))

    def destroy(self) -> None:
        pubs, self._publishers = self._publishers, {}
        for pub in pubs.values():
            self._node.destroy_publisher(pub)
