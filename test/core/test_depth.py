"""Depth decoding (REP 118), pinhole back-projection and the target-surface choice, on synthetic
depth images whose true 3D boxes are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egm_ros.core.depth import (
    DepthError,
    DepthImage,
    Intrinsics,
    check_alignment,
    decode_depth,
    lift_object,
    lift_objects,
    target_surface,
)
from egm_ros.core.types import Box, Box3D, GroundedObject

W, H = 640, 480
K = Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5)


def as_message(metres: np.ndarray, encoding: str) -> DepthImage:
    """``metres`` (NaN = no depth) encoded as a camera would send it, then decoded."""
    if encoding == "16UC1":
        mm = np.where(np.isfinite(metres), np.round(metres * 1000.0), 0).astype("<u2")
        return decode_depth(encoding, W, H, W * 2, mm.tobytes())
    return decode_depth(encoding, W, H, W * 4, metres.astype("<f4").tobytes())


def expected_box(box: Box, z_near: float, z_far: float | None = None) -> Box3D:
    """The box a fronto-parallel patch filling ``box`` at depth ``z_near`` spans (pixel edges
    back-projected; a box's coordinate x is pixel coordinate x - 0.5)."""
    x = [(v - 0.5 - K.cx) * z_near / K.fx for v in (box.x1, box.x2)]
    y = [(v - 0.5 - K.cy) * z_near / K.fy for v in (box.y1, box.y2)]
    return Box3D.from_bounds((x[0], y[0], z_near), (x[1], y[1], z_far or z_near))


def assert_close(got: Box3D, want: Box3D, centre_m: float = 0.01, size_m: float = 0.02) -> None:
    assert np.allclose(got.center, want.center, atol=centre_m), (got, want)
    assert np.allclose(got.size, want.size, atol=size_m), (got, want)


def scene(background: float = 2.5) -> np.ndarray:
    return np.full((H, W), background, np.float64)


TARGET = Box(200, 120, 440, 320)  # 240 x 200 pixels


def with_target(z: np.ndarray, depth: float = 1.0) -> np.ndarray:
    z[int(TARGET.y1) : int(TARGET.y2), int(TARGET.x1) : int(TARGET.x2)] = depth
    return z


# --------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_a_plane_at_a_known_distance_gives_its_box(encoding: str) -> None:
    # The whole image is a wall at 1.2 m: the box's patch of it, exactly.
    depth = as_message(scene(1.2), encoding)
    obj = GroundedObject(visible=TARGET)
    lift_object(depth, K, obj)
    assert obj.visible_3d is not None
    assert_close(obj.visible_3d, expected_box(TARGET, 1.2), centre_m=0.01, size_m=0.02)
    assert abs(obj.visible_3d.center[2] - 1.2) < 1e-3 and obj.visible_3d.size[2] < 1e-3
    assert obj.amodal_3d is None  # no amodal box predicted


def test_16uc1_millimetres_and_32fc1_metres_agree() -> None:
    rng = np.random.default_rng(3)
    z = with_target(scene(), 0.8) + rng.normal(0, 0.002, (H, W))  # some sensor noise
    z[rng.random((H, W)) < 0.05] = np.nan  # and holes
    boxes = []
    for encoding in ("16UC1", "32FC1"):
        obj = GroundedObject(visible=TARGET, amodal=Box(200, 120, 440, 380), amodal_predicted=True)
        lift_object(as_message(z, encoding), K, obj)
        boxes.append(obj)
    millimetres, metres = boxes
    for a, b in (
        (millimetres.visible_3d, metres.visible_3d),
        (millimetres.amodal_3d, metres.amodal_3d),
    ):
        assert np.allclose(a.center, b.center, atol=0.001) and np.allclose(
            a.size, b.size, atol=0.002
        )


def test_big_endian_and_padded_rows_decode_to_the_same_depths() -> None:
    mm = (np.arange(W * H, dtype=np.uint32).reshape(H, W) % 60000 + 1).astype(np.uint16)
    plain = decode_depth("16UC1", W, H, W * 2, mm.astype("<u2").tobytes())
    padded = np.zeros((H, W + 3), ">u2")
    padded[:, :W] = mm
    swapped = decode_depth("16UC1", W, H, (W + 3) * 2, padded.tobytes(), is_bigendian=True)
    assert np.array_equal(plain.pixels, mm) and np.array_equal(swapped.pixels, mm)
    assert plain.scale == 0.001 and swapped.size == (W, H)
    assert not plain.pixels.flags.writeable  # a view on the message, not a copy


# --------------------------------------------------------------------------- the surface choice
OCCLUDERS = {
    # name: (rows, cols) of the occluder inside TARGET, in front at 0.6 m
    "centre": (slice(170, 280), slice(260, 380)),
    "corner": (slice(200, 320), slice(330, 440)),
    "vertical bar": (slice(120, 320), slice(290, 350)),
    "over half the box": (slice(150, 320), slice(200, 400)),
}


@pytest.mark.parametrize("where", OCCLUDERS)
@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_an_occluder_in_front_of_the_target_does_not_win(where: str, encoding: str) -> None:
    z = with_target(scene(), 1.0)
    z[OCCLUDERS[where]] = 0.6
    depth = as_message(z, encoding)
    surface = target_surface(depth, K, TARGET)
    assert abs(surface.z_median - 1.0) < 0.005, where
    if where == "over half the box":  # the nearest or the largest depth cluster would be wrong
        inside = z[120:320, 200:440]
        assert (inside == 0.6).sum() > (inside == 1.0).sum()
    obj = GroundedObject(visible=TARGET)
    lift_object(depth, K, obj)
    assert obj.visible_3d is not None
    assert_close(obj.visible_3d, expected_box(TARGET, 1.0))


def test_the_wall_behind_a_loosely_boxed_target_is_not_taken_for_it() -> None:
    z = scene(2.0)
    z[150:290, 250:390] = 1.1  # the target; the model's box is 10 pixels loose on every side
    loose = Box(240, 140, 400, 300)
    obj = GroundedObject(visible=loose)
    lift_object(as_message(z, "32FC1"), K, obj)
    assert_close(obj.visible_3d, expected_box(Box(250, 150, 390, 290), 1.1), 0.005, 0.005)


def test_a_target_standing_on_a_receding_table_keeps_to_its_reach() -> None:
    # A table plane rising away from the camera fills the box around a flat target at 0.9 m
    # whose base meets it: table and target are one depth layer. The table far behind the
    # target (the box's top rows) is cut at half the box's larger side behind the target's
    # depth; nearer, it stays (README: what the visible box's depth spread includes).
    rows = np.arange(H, dtype=np.float64)[:, None]
    table = 0.5 / np.maximum((rows - K.cy) / K.fy * 0.7 + 0.7, 0.05)  # pitched 45 deg, 0.5 m
    z = np.repeat(table, W, axis=1)
    base_row = int(np.argmin(np.abs(table[:, 0] - 0.9)))
    z[base_row - 90 : base_row, 280:360] = 0.9
    box = Box(270, base_row - 100, 370, base_row)
    reach = 0.5 * 100 * 0.9 / K.fx
    assert table[base_row - 100, 0] > 0.9 + 2 * reach  # the table at the box's top is far
    obj = GroundedObject(visible=box)
    lift_object(as_message(z, "16UC1"), K, obj)
    (_, y0, z0), (_, y1, z1) = obj.visible_3d.low, obj.visible_3d.high
    assert abs(z0 - 0.9) < 0.003 and z1 <= 0.9 + reach + 0.01
    want = expected_box(Box(280, base_row - 90, 360, base_row), 0.9)  # the target's own rows
    assert abs(y0 - want.low[1]) < 0.01 and abs(y1 - want.high[1]) < 0.01


def test_amodal_box_is_the_amodal_extent_at_the_objects_depth_and_as_deep_as_wide() -> None:
    z = with_target(scene(), 1.0)
    z[260:400, 150:500] = 0.7  # hides the target's lower part, which the amodal box gives
    visible = Box(200, 120, 440, 260)
    amodal = Box(200, 120, 440, 320)
    obj = GroundedObject(visible=visible, amodal=amodal, amodal_predicted=True)
    lift_object(as_message(z, "32FC1"), K, obj)
    assert_close(obj.visible_3d, expected_box(visible, 1.0))
    width = 240 * 1.0 / K.fx
    assert_close(obj.amodal_3d, expected_box(amodal, 1.0, 1.0 + width), 0.005, 0.005)
    outer, inner = obj.amodal_3d, obj.visible_3d
    assert np.all(np.array(outer.low) <= np.array(inner.low) + 1e-9)  # it holds the visible box
    assert np.all(np.array(outer.high) >= np.array(inner.high) - 1e-9)


# --------------------------------------------------------------------------- bad depth
def _reason(z: np.ndarray, encoding: str = "32FC1", box: Box = TARGET) -> str:
    with pytest.raises(DepthError) as err:
        lift_object(as_message(z, encoding), K, GroundedObject(visible=box))
    return str(err.value)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_no_depth_in_the_box_gives_a_reason_not_a_box(encoding: str) -> None:
    z = with_target(scene(), np.nan)  # 16UC1: zeros; 32FC1: NaN
    assert "0 of" in _reason(z, encoding) and "without depth" in _reason(z, encoding)


def test_infinities_and_zeros_in_32fc1_are_no_depth() -> None:
    z = with_target(scene(), np.inf)
    z[120:220, 200:440] = -np.inf
    z[220:250, 200:440] = 0.0
    assert "without depth" in _reason(z)


def test_mostly_missing_depth_is_refused() -> None:
    z = with_target(scene(), 1.0)
    z[120:290, 200:440] = np.nan  # 85 % of the box has no depth
    assert "at least 25%" in _reason(z)


def test_depths_out_of_range_are_no_pixel_in_range() -> None:
    assert "outside 0.05-20 m" in _reason(with_target(scene(), 35.0))
    assert "outside 0.05-20 m" in _reason(with_target(scene(), 0.01))


def test_a_box_off_the_image_gives_a_reason() -> None:
    assert "covers no pixel" in _reason(scene(1.0), box=Box(700, 500, 760, 560))


def test_wrong_encoding_and_short_data_give_reasons() -> None:
    with pytest.raises(DepthError, match="not a REP 118 depth encoding"):
        decode_depth("rgb8", W, H, W * 3, bytes(W * H * 3))
    with pytest.raises(DepthError, match="not a REP 118"):
        decode_depth("mono16", W, H, W * 2, bytes(W * H * 2))  # units unknown: refused
    with pytest.raises(DepthError, match="needs"):
        decode_depth("16UC1", W, H, W * 2, bytes(W * H))
    with pytest.raises(DepthError, match="not a valid size"):
        decode_depth("32FC1", W, H, W * 2, bytes(W * H * 4))


def test_sizes_that_disagree_with_the_colour_image_give_reasons() -> None:
    check_alignment((640, 480), (640, 480), (640, 480))
    check_alignment((640, 480), (640, 480), (0, 0))  # a camera_info without its size
    with pytest.raises(DepthError, match="aligned to the colour image"):
        check_alignment((320, 240), (640, 480), (320, 240))
    with pytest.raises(DepthError, match="camera_info is for 1280x720"):
        check_alignment((640, 480), (640, 480), (1280, 720))


def test_camera_info_without_intrinsics_gives_a_reason() -> None:
    assert Intrinsics.from_k([525, 0, 319.5, 0, 520, 239.5, 0, 0, 1]) == Intrinsics(
        525, 520, 319.5, 239.5
    )
    with pytest.raises(DepthError, match="no focal length"):
        Intrinsics.from_k([0.0] * 9)
    with pytest.raises(DepthError, match="9 finite"):
        Intrinsics.from_k([math.nan] * 9)


def test_each_object_gets_3d_or_its_own_reason() -> None:
    z = with_target(scene(), 1.0)
    z[0:100, 0:100] = np.nan
    objects = [GroundedObject(visible=TARGET), GroundedObject(visible=Box(0, 0, 100, 100))]
    reasons = lift_objects(as_message(z, "32FC1"), K, objects)
    assert objects[0].visible_3d is not None and objects[1].visible_3d is None
    assert len(reasons) == 1 and reasons[0].startswith("object 2: 0 of")


def test_the_surface_quantiles_are_exact_order_statistics() -> None:
    from egm_ros.core.depth import _bins, _quantiles

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 3000))
        z = (rng.random(n) * rng.choice([0.01, 1.0, 5.0]) + 0.1).astype(np.float32)
        if trial % 3 == 0:
            z = np.round(z, 3).astype(np.float32)  # millimetres: many repeated values
        s, m = np.sort(z), n - 1
        ranks = (round(0.01 * m), m // 2, round(0.99 * m)) if m >= 99 else (0, m // 2, m)
        assert _quantiles(z, _bins(z)) == tuple(float(s[r]) for r in ranks)


def _fuzz_depth(seed: int, width: int, height: int) -> np.ndarray:
    """Depth with every kind of pixel a sensor sends: valid, 0, NaN, +-Inf, negative, far."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.0, 25.0, (height, width))
    bad = rng.random((height, width)) < rng.uniform(0.0, 0.9)  # a share of bad pixels
    z[bad] = rng.choice([0.0, np.nan, np.inf, -np.inf, -1.0], int(bad.sum()))
    return z


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    box=st.tuples(*(st.floats(-20.0, 60.0, allow_nan=False) for _ in range(4))),
    amodal=st.booleans(),
)
def test_any_depth_gives_a_finite_box_in_range_or_a_reason(seed, box, amodal) -> None:
    from egm_ros.core.geometry import make_box

    width, height = 40, 30
    z = _fuzz_depth(seed, width, height)
    data = z.astype("<f4").tobytes()
    depth = decode_depth("32FC1", width, height, width * 4, data)
    visible = make_box(*box)
    obj = GroundedObject(visible=visible, amodal=visible, amodal_predicted=amodal)
    k = Intrinsics(30.0, 30.0, 19.5, 14.5)
    try:
        lift_object(depth, k, obj)
    except DepthError as err:
        assert str(err)
        assert obj.visible_3d is None and obj.amodal_3d is None
        return
    for b in (obj.visible_3d, obj.amodal_3d) if amodal else (obj.visible_3d,):
        assert b is not None
        assert all(math.isfinite(v) for v in (*b.center, *b.size))
        assert all(s >= 0 for s in b.size)
        assert 0.05 - 1e-6 <= b.low[2] and b.high[2] <= 20.0 + b.size[0] + 1e-6
