"""A compressed frame larger than ``max_pixels`` is decoded at a reduced scale inside the
node, and its result still gives boxes and the image size in the frame's own pixels.
In-process node, OpenAI-compatible engine, scripted server on loopback."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from node_harness import Harness  # noqa: E402
from openai_server import ScriptedOpenAIServer  # noqa: E402
from PIL import Image  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402

from egm_ros.core.annotate import VISIBLE_COLOUR  # noqa: E402
from egm_ros.core.compressed import DecodedImage  # noqa: E402
from egm_ros.core.images import encode_jpeg  # noqa: E402
from egm_ros.core.types import Box, GroundedObject, GroundingOutcome, Status  # noqa: E402
from egm_ros.msg import GroundingResult  # noqa: E402
from egm_ros.node.conversions import decode_image_msg  # noqa: E402
from egm_ros.node.debug_overlay import DebugOverlay  # noqa: E402

pytestmark = pytest.mark.ros

# Qwen3-VL answers in 0..1000 of the image it saw: a quarter to a half across, a quarter to
# three quarters down.
ANSWER = 'The box.</think>\n```json\n[{"bbox_2d": [250, 250, 500, 750], "label": "box"}]\n```'


def frame(width: int, height: int) -> CompressedImage:
    rgb = np.full((height, width, 3), 40, np.uint8)
    rgb[height // 4 : height * 3 // 4, width // 4 : width // 2] = (250, 200, 30)
    msg = CompressedImage(format="jpeg")
    msg.data = encode_jpeg(rgb, 95)
    return msg


def test_a_large_jpeg_message_decodes_reduced_and_a_raw_one_at_its_size() -> None:
    decoded = decode_image_msg(frame(1600, 1200), max_pixels=400_000)
    assert decoded.rgb.shape == (600, 800, 3) and decoded.source_size == (1600, 1200)
    assert decode_image_msg(frame(1600, 1200)).rgb.shape == (1200, 1600, 3)


def test_boxes_and_image_size_of_a_reduced_decode_are_in_the_frames_pixels() -> None:
    harness = Harness()
    try:
        with ScriptedOpenAIServer(reply=lambda body: ANSWER, model="EGM-test") as server:
            harness.grounding_node(
                backend="openai",
                base_url=server.base_url,
                model_family="qwen3_vl",
                compressed_input=True,
                max_pixels=400_000,  # 1600 x 1200 is decoded at 1/2 (800 x 600), then resized
                request_timeout=10.0,
            )
            probe = harness.probe()
            frames = probe.compressed_publisher()
            frames.publish(frame(1600, 1200))
            time.sleep(0.2)  # best-effort frame delivery before the command
            probe.command_pub.publish(String(data="the box"))
            result = probe.wait_results(1)[0]
            url = server.requests[0]["messages"][0]["content"][0]["image_url"]["url"]
    finally:
        harness.close()
    assert result.status == GroundingResult.STATUS_OK, result.status_message
    assert (result.image_width, result.image_height) == (1600, 1200)
    box = result.objects[0].visible
    assert (box.center.position.x, box.center.position.y) == (600.0, 600.0)
    assert (box.size_x, box.size_y) == (400.0, 600.0)
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as sent:
        assert sent.width * sent.height <= 400_000


class _Publisher:
    def __init__(self) -> None:
        self.sent: list = []

    def get_subscription_count(self) -> int:
        return 1

    def publish(self, msg) -> None:
        self.sent.append(msg)


def test_the_debug_overlay_draws_source_pixel_boxes_onto_the_reduced_frame() -> None:
    pub = _Publisher()
    reduced = DecodedImage(np.full((300, 400, 3), 128, np.uint8), (800, 600))
    outcome = GroundingOutcome(status=Status.OK, objects=[GroundedObject(Box(100, 200, 300, 400))])
    DebugOverlay(pub)(reduced, outcome, Header())
    (msg,) = pub.sent
    drawn = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
    assert (msg.width, msg.height) == (400, 300)
    assert tuple(drawn[150, 50]) == VISIBLE_COLOUR  # source x 100 -> 50 on the half-size frame
    assert tuple(drawn[250, 100]) == (128, 128, 128)  # the unscaled box's left edge
