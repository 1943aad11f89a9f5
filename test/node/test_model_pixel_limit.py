"""The node's max_pixels (default 1,003,520, right for Qwen-VL checkpoints) never raises the
embedded model's own processor limit (224 x 224): a 640 x 480 camera frame reaches EGM-Tiny at
about 49 visual tokens and gets a short answer. In-process node, embedded backend."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("torch")

from node_harness import Harness, wait_for  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from egm_ros.core.images import rgb_to_image_fields  # noqa: E402
from egm_ros.data.eval_records import synthetic_records  # noqa: E402
from egm_ros.msg import GroundingResult  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.ml, pytest.mark.slow]


def _engine_processor():
    """EGM-Tiny's processor as the engine sets it up with the node's max_pixels (the engine
    runs in a worker process of its own, so its processor is not reachable from here)."""
    from transformers import AutoProcessor

    from egm_ros.engines.pixel_limits import lower_max_pixels
    from egm_ros.models.embedded import embedded_model_dir

    processor = AutoProcessor.from_pretrained(embedded_model_dir(), local_files_only=True)
    lower_max_pixels(processor.image_processor, 1_003_520)
    return processor


def test_a_640x480_frame_through_the_node_enters_at_the_models_own_limit() -> None:
    (scene,) = synthetic_records(0, 1, False, (640, 480))
    fields = rgb_to_image_fields(scene.rgb, "rgb8")
    frame = Image(
        height=fields["height"], width=fields["width"], encoding="rgb8", step=fields["step"]
    )
    frame.data = fields["data"]
    harness = Harness()
    try:
        node = harness.grounding_node(backend="embedded", request_timeout=120.0)
        probe = harness.probe()
        wait_for(lambda: node.path.grounder is not None and probe.connected(), 120)
        grounder = node.path.grounder
        assert node.get_parameter("max_pixels").value == 1_003_520  # the node's default
        assert grounder.engine.processor_max_pixels == grounder.max_pixels == 224 * 224
        content = [{"type": "image"}, {"type": "text", "text": "x"}]
        probe.image_pub.publish(frame)
        time.sleep(0.2)  # best-effort frame delivery before the command
        probe.command_pub.publish(String(data=scene.sent))
        (result,) = probe.wait_results(1, timeout=180)
        processor = _engine_processor()
        text = processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
        grid = processor(text=[text], images=[scene.rgb], return_tensors="pt")["image_grid_thw"]
    finally:
        harness.close()
    assert grid.tolist() == [[1, 12, 16]]  # 192 x 256 pixels: 12 x 16 patches, 48 tokens
    assert result.status in (GroundingResult.STATUS_OK, GroundingResult.STATUS_NOT_FOUND), (
        result.status_message
    )
    assert (result.image_width, result.image_height) == (640, 480)
    assert 0 < result.generated_tokens < 200  # an answer, not a run to the token limit
    for obj in result.objects:
        box = obj.visible
        assert 0 <= box.center.position.x <= 640 and 0 <= box.center.position.y <= 480
        assert 0 < box.size_x <= 640 and 0 < box.size_y <= 480
