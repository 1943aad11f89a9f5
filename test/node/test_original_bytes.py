"""The node forwards a compressed frame's own JPEG to the server when it needs no resize (as the
EGM authors send their image files), without decoding it unless the debug overlay needs the
pixels; raw frames and resized frames are encoded from pixels. In-process node, OpenAI-compatible
engine, scripted server on loopback."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from node_harness import Harness, make_image, wait_for  # noqa: E402
from openai_server import ScriptedOpenAIServer  # noqa: E402
from PIL import Image  # noqa: E402
from scripted_engine import BytesEngine, ScriptedEngine, ServerResizingEngine  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from sensor_msgs.msg import Image as ImageMsg  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from egm_ros.core.grounder import Grounder, GrounderConfig  # noqa: E402
from egm_ros.core.types import GroundingError  # noqa: E402
from egm_ros.msg import GroundingResult  # noqa: E402
from egm_ros.node import conversions  # noqa: E402
from egm_ros.node.conversions import frame_input, image_msg_bytes  # noqa: E402

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


def test_a_frame_is_decoded_only_when_something_needs_its_pixels() -> None:
    small, large = compressed(jpeg(320, 240)), compressed(jpeg(640, 480))
    takes_bytes = Grounder(BytesEngine(), GrounderConfig(max_pixels=320 * 240))
    undecoded = frame_input(small, takes_bytes)
    assert undecoded.decoded is None and undecoded.source_size == (320, 240)
    assert undecoded.encoded.data == bytes(small.data)
    assert frame_input(small, takes_bytes, pixels_wanted=True).decoded.rgb.shape == (240, 320, 3)
    over = frame_input(large, takes_bytes)  # resized: decoded (at 1/2 inside the DCT)
    assert over.decoded.rgb.shape == (240, 320, 3) and over.source_size == (640, 480)
    pixels_only = Grounder(ScriptedEngine(), GrounderConfig(max_pixels=320 * 240))
    assert frame_input(small, pixels_only).decoded is not None
    raw = frame_input(make_image(64, 48, Time()), takes_bytes)
    assert raw.encoded is None and raw.decoded.rgb.shape == (48, 64, 3)
    cut = compressed(jpeg(320, 240)[:-100])  # not a whole file: decoded (which says so)
    with pytest.raises(GroundingError, match="truncated"):
        frame_input(cut, takes_bytes)
    resizing = Grounder(ServerResizingEngine(320 * 240), GrounderConfig(max_pixels=320 * 240))
    whole = frame_input(large, resizing)  # the server resizes: not decoded at all
    assert whole.decoded is None and whole.source_size == (640, 480)
    assert whole.encoded.data == bytes(large.data)


def test_the_node_sends_a_frame_undecoded_until_the_debug_overlay_is_read(monkeypatch) -> None:
    decodes: list[int] = []
    real = conversions.decode_image_msg

    def counting(msg, max_pixels=0):
        decodes.append(max_pixels)
        return real(msg, max_pixels)

    monkeypatch.setattr(conversions, "decode_image_msg", counting)
    data = jpeg(320, 240)
    harness = Harness()
    try:
        with ScriptedOpenAIServer(reply=lambda body: ANSWER, model="EGM-test") as server:
            node = harness.grounding_node(
                backend="openai",
                base_url=server.base_url,
                model_family="qwen3_vl",
                compressed_input=True,
                request_timeout=10.0,
            )
            probe = harness.probe()
            frames = probe.compressed_publisher()
            overlays: list = []
            for i in (1, 2):
                if i == 2:  # someone reads debug_image: the frame is decoded to draw on
                    probe.node.create_subscription(ImageMsg, "debug_image", overlays.append, 2)
                    wait_for(lambda: node.path._frame_wanted())
                frames.publish(compressed(data))
                time.sleep(0.2)  # best-effort frame delivery before the command
                probe.command_pub.publish(String(data="the mug"))
                results = probe.wait_results(i)
                assert results[-1].status == GroundingResult.STATUS_OK, results[-1].status_message
                if i == 1:
                    assert decodes == []  # the first went out undecoded
            wait_for(lambda: len(overlays) == 1)
            sent = [sent_image(body) for body in server.requests]
    finally:
        harness.close()
    assert sent == [data, data]  # byte for byte both times
    assert len(decodes) == 1
    assert (overlays[0].width, overlays[0].height) == (320, 240)
    assert [(r.image_width, r.image_height) for r in results] == [(320, 240)] * 2
