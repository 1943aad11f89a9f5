"""Frames that go to a byte-taking engine as their own JPEG, undecoded (issue 17): when that is
allowed (the engine sends bytes and the frame is within ``max_pixels``), that the engine then
gets exactly those bytes, and that the boxes come back as they would from the decoded pixels:
what the model sees is what the answer is parsed against."""

from __future__ import annotations

import numpy as np
import pytest
from scripted_engine import BytesEngine, ScriptedEngine, ServerResizingEngine, answer

from egm_ros.core.compressed import decode_compressed, encoded_as_is
from egm_ros.core.engine import EncodedImage, Engine
from egm_ros.core.families import Family, smart_resize
from egm_ros.core.grounder import Grounder, GrounderConfig
from egm_ros.core.images import encode_jpeg
from egm_ros.core.types import Mode, Status


def grounder(engine: Engine, family: Family = Family.QWEN3_VL, **config) -> Grounder:
    return Grounder(engine, GrounderConfig(family=family, **config))


def frame(width: int = 640, height: int = 480) -> EncodedImage:
    rgb = np.full((height, width, 3), 40, np.uint8)
    rgb[48:240, 64:320] = (250, 200, 30)
    encoded = encoded_as_is(encode_jpeg(rgb, 90))
    assert encoded is not None and encoded.size == (width, height)
    return encoded


def test_only_a_byte_taking_engine_within_max_pixels_sends_a_frame_as_it_is() -> None:
    assert grounder(BytesEngine(), max_pixels=640 * 480).sends_as_is((640, 480))
    assert not grounder(BytesEngine(), max_pixels=640 * 480).sends_as_is((641, 480))
    assert grounder(BytesEngine(), max_pixels=0).sends_as_is((3840, 2160))  # 0: no limit
    assert not grounder(BytesEngine()).sends_as_is((1, 480))  # too small to ground
    assert not grounder(ScriptedEngine(), max_pixels=0).sends_as_is((640, 480))  # pixels only


def test_an_undecoded_frame_reaches_the_engine_as_its_bytes_and_boxes_are_in_its_pixels() -> None:
    encoded = frame()
    engine = BytesEngine(visible=answer([100, 100, 500, 500]), amodal=answer([100, 100, 500, 750]))
    out = grounder(engine).ground(
        None, "the box", Mode.AMODAL, encoded=encoded, source_size=encoded.size
    )
    assert out.status is Status.OK, out.message
    assert [(r.image, r.encoded) for r in engine.calls[0]] == [(None, encoded)] * 2
    assert out.objects[0].visible.as_list() == [64.0, 48.0, 320.0, 240.0]
    assert out.objects[0].amodal.as_list() == [64.0, 48.0, 320.0, 360.0]


@pytest.mark.parametrize("family", [Family.QWEN3_VL, Family.QWEN2_5_VL])
def test_undecoded_and_decoded_give_the_same_boxes(family: Family) -> None:
    """Qwen2.5-VL answers in the pixels of its processor's resize: the undecoded path must
    compute that from the frame's size exactly as the decoded path does from its pixels."""
    encoded = frame(1000, 700)
    rgb = decode_compressed("jpeg", encoded.data).rgb
    text = answer([100, 120, 600, 650])
    decoded = grounder(BytesEngine(visible=text), family).ground(rgb, "x", encoded=encoded)
    undecoded = grounder(BytesEngine(visible=text), family).ground(
        None, "x", encoded=encoded, source_size=encoded.size
    )
    assert decoded.status is undecoded.status is Status.OK
    assert undecoded.objects[0].visible == decoded.objects[0].visible


@pytest.mark.parametrize(
    ("engine", "max_pixels", "with_bytes", "size"),
    [
        (ScriptedEngine, 0, True, (640, 480)),  # an engine that needs pixels
        (BytesEngine, 100_000, True, (640, 480)),  # the frame would be resized
        (BytesEngine, 0, False, (640, 480)),  # no bytes either
        (BytesEngine, 0, True, None),  # no size to report boxes in
    ],
)
def test_no_pixels_is_invalid_input_unless_the_bytes_can_go_as_they_are(
    engine: type[ScriptedEngine], max_pixels: int, with_bytes: bool, size: tuple | None
) -> None:
    scripted = engine(visible=answer([1, 1, 9, 9]))
    encoded = frame() if with_bytes else None
    out = grounder(scripted, max_pixels=max_pixels).ground(
        None, "the box", encoded=encoded, source_size=size
    )
    assert out.status is Status.INVALID_INPUT and "no pixels" in out.message
    assert scripted.calls == []


def test_prepare_says_what_the_engine_gets() -> None:
    encoded = frame()
    rgb = decode_compressed("jpeg", encoded.data).rgb
    g = grounder(BytesEngine(), max_pixels=100_000)
    resized = g.prepare(rgb, encoded)
    assert resized.encoded is None and resized.image is not None
    assert resized.size == (resized.image.shape[1], resized.image.shape[0])
    assert resized.size[0] * resized.size[1] <= 100_000 and resized.source_size == (640, 480)
    whole = grounder(BytesEngine()).prepare(rgb, encoded)
    assert whole.image is rgb and whole.encoded is encoded and whole.size == (640, 480)


def test_a_server_that_resizes_gets_every_frame_as_it_is_when_its_limit_is_the_grounders() -> None:
    """``server_max_pixels``: the server resizes, so a frame over the limit goes undecoded; not
    when the grounder wants fewer pixels than the server would keep (it resizes then)."""
    server = ServerResizingEngine(500_000)
    assert grounder(server, max_pixels=1_003_520).sends_as_is((3840, 2160))
    assert grounder(server, max_pixels=500_000).sends_as_is((1920, 1080))
    assert grounder(server, max_pixels=0).sends_as_is((3840, 2160))
    assert not grounder(server, max_pixels=200_000).sends_as_is((1920, 1080))
    assert grounder(server, max_pixels=200_000).sends_as_is((400, 300))  # within it anyway
    assert not grounder(BytesEngine(), max_pixels=500_000).sends_as_is((1920, 1080))


def test_boxes_of_a_frame_the_server_resized_are_in_the_frames_pixels() -> None:
    """Qwen2.5-VL answers in the pixels of the server's resize: the grounder computes that size
    from the frame's and the server's limit, as the server's processor does."""
    encoded = frame(1920, 1080)
    limit = 200_000
    h, w = smart_resize(1080, 1920, max_pixels=limit)
    engine = ServerResizingEngine(
        limit, visible=answer([w // 4, h // 4, w // 2, h // 2]), amodal=answer([0, 0, w, h])
    )
    out = grounder(engine, Family.QWEN2_5_VL, max_pixels=1_003_520).ground(
        None, "the box", Mode.AMODAL, encoded=encoded, source_size=encoded.size
    )
    assert out.status is Status.OK, out.message
    assert [(r.image, r.encoded) for r in engine.calls[0]] == [(None, encoded)] * 2
    visible = out.objects[0].visible.as_list()
    assert visible == pytest.approx([480, 270, 960, 540], abs=1920 / w)
    assert out.objects[0].amodal.as_list() == pytest.approx([0, 0, 1920, 1080])


def test_decoded_pixels_with_their_bytes_go_as_the_bytes_when_the_server_resizes() -> None:
    """egm-ground's image file (or the debug overlay's decoded frame): its bytes go whole, as
    the server resizes them; without ``server_max_pixels`` the pixels are resized here."""
    encoded = frame(1920, 1080)
    rgb = decode_compressed("jpeg", encoded.data).rgb
    sent = grounder(ServerResizingEngine(500_000), max_pixels=500_000).prepare(rgb, encoded)
    assert sent.encoded is encoded and sent.size == sent.source_size == (1920, 1080)
    resized = grounder(BytesEngine(), max_pixels=500_000).prepare(rgb, encoded)
    assert resized.encoded is None and resized.size[0] * resized.size[1] <= 500_000
