"""The node forwards a compressed frame's own JPEG to the server when it needs no resize (as the
EGM authors send their image files); raw frames and resized frames are encoded from pixels.
In-process node, OpenAI-compatible engine, scripted server on loopback."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from node_harness import Harness, make_image  # noqa: E402
from openai_server import ScriptedOpenAIServer  # noqa: E402
from PIL import Image  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from egm_ros.msg import GroundingResult  # noqa: E402
from egm_ros.node.conversions import image_msg_bytes  # noqa: E402

pytestmark = pytest.mark.ros

ANSWER = 'The mug.</think>\n```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "mug"}]\n```'


def jpeg(width: int, height: int) -> bytes:
    rng = np.random.default_rng(width)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def compressed(data: bytes, fmt: str = "jpeg") -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.data = data
    return msg


def sent_image(body: dict) -> bytes:
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    return base64.b64decode(url.split(",", 1)[1])


def test_only_compressed_frames_carry_their_own_bytes() -> None:
    data = jpeg(64, 48)
    encoded = image_msg_bytes(compressed(data, "bgr8; jpeg compressed bgr8"))
    assert encoded is not None and encoded.data == data and encoded.mime == "image/jpeg"
    assert image_msg_bytes(make_image(64, 48, Time())) is None
    assert image_msg_bytes(compressed(b"\0" * 12 + data, "16UC1; compressedDepth png")) is None


def test_a_compressed_frame_goes_to_the_server_unchanged_unless_resized() -> None:
    small, large = jpeg(320, 240), jpeg(640, 480)
    harness = Harness()
    try:
        with ScriptedOpenAIServer(reply=lambda body: ANSWER, model="EGM-test") as server:
            harness.grounding_node(
                backend="openai",
                base_url=server.base_url,
                model_family="qwen3_vl",
                compressed_input=True,
                max_pixels=100_000,  # 320 x 240 fits, 640 x 480 is resized
                request_timeout=10.0,
            )
            probe = harness.probe()
            frames = probe.compressed_publisher()
            for i, data in enumerate((small, large), 1):
                frames.publish(compressed(data))
                time.sleep(0.2)  # best-effort frame delivery before the command
                probe.command_pub.publish(String(data="the mug"))
                results = probe.wait_results(i)
                assert results[-1].status == GroundingResult.STATUS_OK, results[-1].status_message
            first, second = (sent_image(body) for body in server.requests)
    finally:
        harness.close()
    assert first == small  # forwarded byte for byte
    assert second != large  # resized, so encoded from the resized pixels
    with Image.open(io.BytesIO(second)) as img:
        assert img.format == "JPEG" and img.width * img.height <= 100_000
    assert (results[1].image_width, results[1].image_height) == (640, 480)
    assert "the mug" in json.dumps(server.requests[0]["messages"])
