"""The ``debug_image`` topic: each result drawn on the frame it was computed on.

It runs inside the grounding node, on the worker that produced the result, and only while
someone subscribes: the decoded frame is at hand there, so the overlay costs one drawing and one
Image message per *result* (commands arrive at a few Hz), nothing per camera frame. A separate
overlay node (as in yolo_ros) would have to take every camera frame at 30 Hz over DDS, keep a
buffer of them and match results by stamp; see docs/architecture.md for the numbers.
"""

from __future__ import annotations

from typing import Any

from std_msgs.msg import Header

from egm_ros.core.annotate import draw_result
from egm_ros.core.compressed import DecodedImage
from egm_ros.core.types import GroundingOutcome
from egm_ros.node.conversions import rgb_to_image_msg


class DebugOverlay:
    """Publishes the drawn result on ``publisher`` (a ``sensor_msgs/Image`` publisher)."""

    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher

    def active(self) -> bool:
        """Someone reads ``debug_image``: the request path then decodes every frame it uses."""
        pub = self.publisher
        return pub is not None and pub.get_subscription_count() > 0

    def __call__(
        self, decoded: DecodedImage | None, outcome: GroundingOutcome, header: Header
    ) -> None:
        pub = self.publisher
        if decoded is None or pub is None or not self.active():
            return
        drawn = draw_result(  # on a reduced decode, boxes are scaled onto it
            decoded.rgb,
            outcome.objects,
            caption=outcome.prompt,
            status_text=outcome.status.value,
            source_size=decoded.source_size,
        )
        pub.publish(rgb_to_image_msg(drawn, header))
