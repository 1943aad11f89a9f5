"""Depth for grasp planners: a depth image aligned to the colour image lifts a grounded target's
2D boxes to 3D boxes in the colour camera's optical frame (x right, y down, z forward; metres).

Depth images follow REP 118: ``16UC1`` is millimetres with 0 = no depth; ``32FC1`` is metres
with NaN (no return), -Inf (too near) and +Inf (too far) = no depth (REP 117), and 0 is read as
no depth too (no surface lies at zero distance). The encoding says the unit, so there is no
units parameter to get wrong. Back-projection is the pinhole model of the depth camera_info's
``K`` (the depth image is aligned to the colour image, hence rectified: ``D`` is not used).

Which depth pixels inside the visible box are the target's is :func:`target_surface`'s job (an
occluder in front of the target, or the table and wall behind it, must not be taken for it).
Every way the depth can be unusable raises :class:`DepthError`, whose text is the reason the
result carries: a box is never guessed.

ROS-free: message fields in, plain data out; pixels are read where the boxes need them only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from egm_ros.core.types import Box, Box3D, GroundedObject

#: REP 118 encodings: numpy dtype (little-endian) and metres per unit.
DEPTH_ENCODINGS: dict[str, tuple[str, float]] = {"16UC1": ("<u2", 0.001), "32FC1": ("<f4", 1.0)}
#: Depths outside this range (metres) count as no depth.
MIN_DEPTH_M, MAX_DEPTH_M = 0.05, 20.0
#: Less than this share of a box's pixels with depth, or fewer pixels, gives no 3D.
MIN_VALID_SHARE = 0.25
MIN_PIXELS = 12
#: Boxes with more pixels are read on an even grid of about this many (first and last rows and
#: columns always included, so the extents stay those of the box's edges).
MAX_SAMPLES = 40_000
#: Depth histogram: bins of 0.5 % of the depth (log scale); a depth layer ends where no pixel
#: (or only sensor speckle: at most NOISE_SHARE of them) lies over 3 % of the depth or 1 cm.
BIN = math.log1p(0.005)
GAP_REL, GAP_ABS_M = 0.03, 0.01
NOISE_SHARE = 0.002
NBINS = int(math.log(MAX_DEPTH_M / MIN_DEPTH_M) / BIN) + 1
#: Border strips of the visible box (share of its side) and the share of a strip's depth
#: pixels a layer needs there to count as present on that side.
STRIP = 0.15
STRIP_SHARE = 0.1
#: The target's surface lies within this share of its box's larger side (in metres at its
#: depth) of its depth; beyond is what it stands on or leans against.
REACH = 0.5


class DepthError(Exception):
    """The depth cannot give a trustworthy box; the message says why (has_3d false)."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics (pixels) from a camera_info ``K``: u = fx * x / z + cx."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_k(cls, k: Sequence[float]) -> Intrinsics:
        values = [float(v) for v in k]
        if len(values) != 9 or not all(math.isfinite(v) for v in values):
            raise DepthError("depth camera_info K is not 9 finite numbers")
        fx, fy, cx, cy = values[0], values[4], values[2], values[5]
        if fx <= 0 or fy <= 0:
            raise DepthError(f"depth camera_info K has no focal length (fx {fx:g}, fy {fy:g})")
        return cls(fx, fy, cx, cy)


@dataclass(frozen=True)
class DepthImage:
    """A depth image as sent: ``pixels`` is a read-only H x W view on the message buffer
    (uint16 or float32), ``scale`` its metres per unit."""

    pixels: np.ndarray
    scale: float

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.pixels.shape[1], self.pixels.shape[0]


def decode_depth(
    encoding: str, width: int, height: int, step: int, data, is_bigendian: bool = False
) -> DepthImage:
    """A ``sensor_msgs/Image``'s fields as a :class:`DepthImage` (no copy of the pixels)."""
    if encoding not in DEPTH_ENCODINGS:
        raise DepthError(
            f"depth encoding {encoding!r} is not a REP 118 depth encoding "
            "(16UC1 millimetres or 32FC1 metres)"
        )
    kind, scale = DEPTH_ENCODINGS[encoding]
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<")
    if width <= 0 or height <= 0 or step < width * dtype.itemsize:
        raise DepthError(f"depth image {width}x{height} with step {step} is not a valid size")
    try:
        buf = np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as err:
        raise DepthError(f"depth data is not a byte buffer ({type(data).__name__})") from err
    if buf.size < step * height:
        raise DepthError(
            f"depth data has {buf.size} bytes, {encoding} {width}x{height} with step {step} "
            f"needs {step * height}"
        )
    buf = buf[: step * height]
    if step % dtype.itemsize == 0:  # numpy handles unaligned views; only the row stride must fit
        pixels = buf.view(dtype).reshape(height, step // dtype.itemsize)[:, :width]
    else:
        rows = np.lib.stride_tricks.as_strided(
            buf, shape=(height, width * dtype.itemsize), strides=(step, 1), writeable=False
        )
        pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    pixels.flags.writeable = False
    return DepthImage(pixels, scale)


def check_alignment(
    depth_size: tuple[int, int], colour_size: tuple[int, int], info_size: tuple[int, int]
) -> None:
    """Depth, its camera_info and the colour image must describe the same pixels."""
    (dw, dh), (cw, ch), (iw, ih) = depth_size, colour_size, info_size
    if (dw, dh) != (cw, ch):
        raise DepthError(
            f"depth image is {dw}x{dh} but the colour image is {cw}x{ch}: the depth must be "
            "aligned to the colour image"
        )
    if (iw, ih) != (0, 0) and (iw, ih) != (dw, dh):
        raise DepthError(f"depth camera_info is for {iw}x{ih} images, the depth image is {dw}x{dh}")


# --------------------------------------------------------------------------- the target's pixels
@dataclass(frozen=True)
class Surface:
    """The target's own depth pixels: ``mask`` over the ``rows`` x ``cols`` grid of depths
    ``z`` (metres), and the 1st percentile, median and 99th percentile of its depths."""

    rows: np.ndarray
    cols: np.ndarray
    z: np.ndarray
    mask: np.ndarray
    z_low: float
    z_median: float
    z_high: float


def _axis(lo: float, hi: float, limit: int, thin: float) -> np.ndarray:
    """Pixel indices whose centres lie in [lo, hi) along one axis, evenly thinned by ``thin``
    (the first and last kept, so the box's edges are read)."""
    first, end = max(0, math.ceil(lo - 0.5)), min(limit, math.floor(hi - 0.5) + 1)
    if end <= first:
        raise DepthError("the visible box covers no pixel of the depth image")
    count = max(1, round((end - first) / thin))
    return np.unique(np.linspace(first, end - 1, count).round()).astype(np.intp)


def _grid(box: Box, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the box's pixels, thinned to about MAX_SAMPLES."""
    thin = max(1.0, math.sqrt(box.width * box.height / MAX_SAMPLES))
    return _axis(box.y1, box.y2, size[1], thin), _axis(box.x1, box.x2, size[0], thin)


def _metres(depth: DepthImage, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Depth in metres at rows x cols; NaN where there is none (0, NaN, +-Inf, out of range).
    Raises when too few pixels have depth, naming how many lacked it and why."""
    if rows.size == rows[-1] - rows[0] + 1 and cols.size == cols[-1] - cols[0] + 1:
        raw = depth.pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    else:
        raw = depth.pixels[np.ix_(rows, cols)]
    z = raw.astype(np.float32) * np.float32(depth.scale)
    if raw.dtype.kind == "u":  # millimetres: 0 is no depth
        none = raw == 0
    else:
        with np.errstate(invalid="ignore"):
            none = ~np.isfinite(z) | (z <= 0)
    with np.errstate(invalid="ignore"):
        out = ~none & ((z < MIN_DEPTH_M) | (z > MAX_DEPTH_M))
    z[none | out] = np.nan
    lacking, outside = int(none.sum()), int(out.sum())
    valid = z.size - lacking - outside
    if valid < max(MIN_PIXELS, MIN_VALID_SHARE * z.size):
        raise DepthError(
            f"{valid} of {z.size} depth pixels in the visible box are usable "
            f"({lacking} without depth: 0/NaN/Inf; {outside} outside "
            f"{MIN_DEPTH_M:g}-{MAX_DEPTH_M:g} m); at least {MIN_VALID_SHARE:.0%} are needed"
        )
    return z


def _bins(z: np.ndarray) -> np.ndarray:
    """Each pixel's depth-histogram bin; -1 where there is no depth."""
    bins = np.full(z.shape, -1, np.int16)
    valid = ~np.isnan(z)
    bins[valid] = np.log(z[valid] * np.float32(1.0 / MIN_DEPTH_M)) * np.float32(1.0 / BIN)
    return bins


def _bin_depth(index: float) -> float:
    return MIN_DEPTH_M * math.exp(index * BIN)


def _layers(bins: np.ndarray) -> np.ndarray:
    """Depth layers of the box's pixels as a lookup from bin to layer (0 = nearest; -1 = none;
    the last entry answers bin -1, no depth). Layers are runs of the depth histogram separated
    by an empty stretch of GAP_REL of the depth (at least GAP_ABS_M); bins holding only
    speckle (NOISE_SHARE of the pixels) count as empty."""
    counts = np.bincount(bins[bins >= 0])
    occupied = np.flatnonzero(counts > NOISE_SHARE * counts.sum())
    if occupied.size == 0:
        occupied = np.flatnonzero(counts)
    depth = MIN_DEPTH_M * np.exp(occupied[:-1] * BIN)
    needed = np.log1p(np.maximum(GAP_REL, GAP_ABS_M / depth)) / BIN
    cuts = np.flatnonzero(np.diff(occupied) > needed)
    starts = occupied[np.r_[0, cuts + 1]]
    ends = occupied[np.r_[cuts, occupied.size - 1]]
    lookup = np.full(NBINS + 1, -1, np.int16)
    for layer, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        lookup[lo : hi + 1] = layer
    return lookup


def _shares(labels: np.ndarray, layers: int) -> np.ndarray:
    """Each layer's share of the depth pixels of ``labels`` (zeros when there are none)."""
    counts = np.bincount(labels[labels >= 0], minlength=layers).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def _framing_layer(labels: np.ndarray) -> int:
    """The layer that frames the box: present (STRIP_SHARE of the depth pixels) in the most of
    the box's four border strips; on a tie, the one with the larger sum of its shares.

    The visible box bounds the target's visible pixels, so the target shows along all four
    sides. An occluder inside the box covers part of it and runs along two or three sides at
    most; what lies behind (table, wall) shows in the corners, and where it shows all around
    (a thin target), the target covers more of the strips."""
    h, w = labels.shape
    ty, tx = max(1, round(STRIP * h)), max(1, round(STRIP * w))
    layers = int(labels.max()) + 1
    present, shares = np.zeros(layers), np.zeros(layers)
    for strip in (labels[:ty], labels[-ty:], labels[:, :tx], labels[:, -tx:]):
        share = _shares(strip, layers)
        present += share >= STRIP_SHARE
        shares += share
    return int(np.argmax(present + shares / 4.1))  # shares / 4.1 < 1: only breaks ties


def _peak_bin(bins: np.ndarray, mask: np.ndarray) -> int:
    """The densest depth bin of the masked pixels in the box's central half (all of them when
    none is there), smoothed over neighbouring bins."""
    h, w = bins.shape
    centre = (slice(h // 4, h - h // 4), slice(w // 4, w - w // 4))
    chosen = bins[centre][mask[centre]]
    if chosen.size == 0:
        chosen = bins[mask]
    counts = np.bincount(chosen).astype(np.float64)
    return int(np.argmax(np.convolve(counts, [1.0, 2.0, 1.0], mode="same")))


def target_surface(depth: DepthImage, k: Intrinsics, box: Box) -> Surface:
    """The target's own depth pixels inside its visible box.

    1. Depth layers: pixels split where the depth histogram has an empty stretch (a surface
       in front of or behind another one).
    2. The target's layer: the one that frames the box (:func:`_framing_layer`).
    3. Within it, the target's depth is the histogram peak of its pixels in the box's central
       half; pixels farther from it than REACH of the box's larger side (in metres at that
       depth) are the surface it stands on or leans against, and are dropped."""
    rows, cols = _grid(box, depth.size)
    z = _metres(depth, rows, cols)
    bins = _bins(z)
    labels = _layers(bins)[bins]
    mask = labels == _framing_layer(labels)
    z_peak = _bin_depth(_peak_bin(bins, mask) + 0.5)
    reach = REACH * max(box.width / k.fx, box.height / k.fy) * z_peak
    low = math.floor(math.log(max(z_peak - reach, MIN_DEPTH_M) / MIN_DEPTH_M) / BIN)
    high = math.floor(math.log((z_peak + reach) / MIN_DEPTH_M) / BIN)
    mask &= (bins >= low) & (bins <= high)
    z_low, z_median, z_high = _quantiles(z[mask], bins[mask])
    return Surface(rows, cols, z, mask, z_low, z_median, z_high)


def _quantiles(depths: np.ndarray, bins: np.ndarray) -> tuple[float, float, float]:
    """The 1st percentile, median and 99th percentile of ``depths`` (all three exact), found
    through their histogram ``bins`` so only one bin's values are sorted each."""
    n = depths.size - 1
    ranks = (round(0.01 * n), n // 2, round(0.99 * n)) if n >= 99 else (0, n // 2, n)
    below = np.concatenate(([0], np.cumsum(np.bincount(bins))))
    values = []
    for rank in ranks:
        b = int(np.searchsorted(below, rank, side="right")) - 1
        in_bin = np.sort(depths[bins == b])  # not np.partition: slow on repeated values
        values.append(float(in_bin[rank - below[b]]))
    return values[0], values[1], values[2]


# --------------------------------------------------------------------------- the 3D boxes
def _footprint_extent(
    index: np.ndarray, near: np.ndarray, far: np.ndarray, centre: float, focal: float
) -> tuple[float, float]:
    """Extent along one image axis of the pixels' footprints, from the nearest and farthest
    depth in each row or column: the outer edge of a pixel left of the principal point reaches
    farthest out when it is deepest, right of it likewise."""
    have = np.isfinite(near)
    index, near, far = index[have], near[have], far[have]
    lo = index - 0.5 - centre
    hi = index + 0.5 - centre
    low = np.min(lo * np.where(lo < 0, far, near))
    high = np.max(hi * np.where(hi > 0, far, near))
    return float(low) / focal, float(high) / focal


def footprint_bounds(
    rows: np.ndarray, cols: np.ndarray, z: np.ndarray, mask: np.ndarray, k: Intrinsics
) -> tuple[tuple[float, float], tuple[float, float]]:
    """((x_low, y_low), (x_high, y_high)) in metres of the masked pixels of ``z`` (depths at
    ``rows`` x ``cols``): each pixel's square back-projected at its own depth."""
    near = np.where(mask, z, np.inf)
    far = np.where(mask, z, -np.inf)
    cols_f, rows_f = cols.astype(np.float64), rows.astype(np.float64)
    x_lo, x_hi = _footprint_extent(cols_f, near.min(axis=0), far.max(axis=0), k.cx, k.fx)
    y_lo, y_hi = _footprint_extent(rows_f, near.min(axis=1), far.max(axis=1), k.cy, k.fy)
    return (x_lo, y_lo), (x_hi, y_hi)


def visible_box_3d(surface: Surface, k: Intrinsics) -> Box3D:
    """The box around the surface: its pixels' footprints in x and y, the 1st to 99th
    percentile of its depths in z (sensor speckle)."""
    (x_lo, y_lo), (x_hi, y_hi) = footprint_bounds(
        surface.rows, surface.cols, surface.z, surface.mask, k
    )
    return Box3D.from_bounds((x_lo, y_lo, surface.z_low), (x_hi, y_hi, surface.z_high))


def amodal_box_3d(surface: Surface, visible: Box3D, k: Intrinsics, amodal: Box) -> Box3D:
    """The full object: the amodal 2D box back-projected at the object's depth (the median of
    its visible surface), joined with the visible box; in z from the visible surface's nearest
    point back by the object's depth, taken as its width (objects picked from tables, cups,
    bottles, balls, boxes, are about as deep as wide) or the visible depth spread if larger."""
    z = surface.z_median
    (vx0, vy0, vz0), (vx1, vy1, vz1) = visible.low, visible.high
    x0 = min(vx0, (amodal.x1 - 0.5 - k.cx) * z / k.fx)
    x1 = max(vx1, (amodal.x2 - 0.5 - k.cx) * z / k.fx)
    y0 = min(vy0, (amodal.y1 - 0.5 - k.cy) * z / k.fy)
    y1 = max(vy1, (amodal.y2 - 0.5 - k.cy) * z / k.fy)
    depth = max(vz1 - vz0, x1 - x0)
    return Box3D.from_bounds((x0, y0, vz0), (x1, y1, vz0 + depth))


def lift_object(depth: DepthImage, k: Intrinsics, obj: GroundedObject) -> None:
    """Fill ``obj.visible_3d`` (and ``amodal_3d`` when the amodal box was predicted), or raise
    :class:`DepthError`."""
    if obj.visible is None:
        raise DepthError("the object has no visible box")
    surface = target_surface(depth, k, obj.visible)
    visible = visible_box_3d(surface, k)
    amodal = None
    if obj.amodal_predicted and obj.amodal is not None:
        amodal = amodal_box_3d(surface, visible, k, obj.amodal)
    obj.visible_3d, obj.amodal_3d = visible, amodal


def lift_objects(depth: DepthImage, k: Intrinsics, objects: Sequence[GroundedObject]) -> list[str]:
    """Lift every object; the reason for each one that got no 3D (numbered when several)."""
    reasons = []
    for i, obj in enumerate(objects):
        try:
            lift_object(depth, k, obj)
        except DepthError as err:
            reasons.append(f"object {i + 1}: {err}" if len(objects) > 1 else str(err))
    return reasons
