"""Evaluation records in the EGM authors' format: JSON lines with ``image`` (path), ``sent``,
``bbox`` (pixel x1, y1, x2, y2), ``width``, ``height``; amodal sets name the visible box
``modal_bbox`` (and ``bbox`` is then the amodal box). As in the authors' loader, a record with
``modal_bbox`` but no ``bbox`` is scored on ``modal_bbox``. Other keys are ignored, so the
authors' files (``data/EGM_Datasets/metadata/eval/*.jsonl``) work as they are; synthetic sets
add ``expr_type`` (the kind of expression) for a breakdown.

Image paths are relative to an image root: the authors' ``BASE_IMG_DIR`` (their repository
folder; they join ``image`` with its leading ``/`` removed), or by default the file's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egm_ros.core.geometry import make_box
from egm_ros.core.types import Box


@dataclass
class EvalRecord:
    image: str  # path; "" when ``rgb`` holds the image
    sent: str
    visible: Box
    amodal: Box | None  # only in amodal sets
    width: int
    height: int
    rgb: np.ndarray | None = None  # in-memory image (synthetic sets)
    expr_type: str = ""  # kind of expression (synthetic sets): attribute, ordinal, ...


def _box(values: object) -> Box:
    if not isinstance(values, list | tuple) or len(values) != 4:
        raise ValueError(f"expected [x1, y1, x2, y2], got {values!r}")
    return make_box(*(float(v) for v in values))


def _record(item: object, folder: Path, root: Path | None) -> EvalRecord:
    if not isinstance(item, dict):
        raise ValueError(f"expected a JSON object, got {type(item).__name__}")
    has = set(item) | ({"bbox"} if "modal_bbox" in item else set())  # their loader's fallback
    missing = [k for k in ("image", "sent", "bbox", "width", "height") if k not in has]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    width, height = int(item["width"]), int(item["height"])
    if width <= 0 or height <= 0:
        raise ValueError(f"bad image size {width}x{height}")
    image = str(item["image"])
    path = root / image.lstrip("/") if root is not None else folder / image
    amodal_set = "bbox" in item and "modal_bbox" in item
    return EvalRecord(
        image=str(path),
        sent=str(item["sent"]),
        visible=_box(item["modal_bbox"] if "modal_bbox" in item else item["bbox"]),
        amodal=_box(item["bbox"]) if amodal_set else None,
        width=width,
        height=height,
        expr_type=str(item.get("expr_type", "")),
    )


def read_records(path: str | Path, image_root: str | Path | None = None) -> list[EvalRecord]:
    """The records of a JSONL file (blank lines skipped), image paths under ``image_root``
    (default: the file's folder); a bad line raises ``ValueError`` naming the file and line."""
    path = Path(path)
    root = Path(image_root) if image_root else None
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(_record(json.loads(line), path.parent, root))
            except (ValueError, TypeError) as err:  # JSONDecodeError is a ValueError
                raise ValueError(f"{path}:{number}: bad record: {err}") from None
    return records


def synthetic_records(
    seed: int, n: int, amodal: bool, size: tuple[int, int] | None = None
) -> list[EvalRecord]:
    """``n`` samples from held-out scenes ``seed, seed + 1, ...`` (one per scene; training
    uses seeds >= 1e6). ``amodal``: targets are mostly partly hidden and carry both boxes.
    ``size``: (width, height) of the scenes, 224 x 224 by default."""
    from egm_ros.data.expressions import make_samples
    from egm_ros.data.scenes import generate_scene

    out: list[EvalRecord] = []
    scene_seed = seed
    while len(out) < n:
        if size is None:
            scene = generate_scene(scene_seed)
        else:
            scene = generate_scene(scene_seed, width=size[0], height=size[1])
        rng = np.random.default_rng([scene_seed, 31337])
        scene_seed += 1
        for sample in make_samples(scene, rng, amodal=amodal, per_scene=1):
            target = scene.objects[sample.target_index]
            width, height = scene.size
            out.append(
                EvalRecord(
                    image="",
                    sent=sample.expression,
                    visible=target.visible,
                    amodal=target.amodal if amodal else None,
                    width=width,
                    height=height,
                    rgb=scene.image,
                    expr_type=sample.category,
                )
            )
    return out


def write_synthetic_set(out_dir: str | Path, seed: int, n: int, amodal: bool) -> Path:
    """Render a synthetic set to PNGs (``out_dir/images``) and a JSONL file in the authors'
    format; returns the JSONL path."""
    from PIL import Image

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, rec in enumerate(synthetic_records(seed, n, amodal)):
        name = f"images/{seed}_{i:05d}.png"
        Image.fromarray(rec.rgb).save(out / name)
        item = {"image": name, "sent": rec.sent, "width": rec.width, "height": rec.height}
        if rec.amodal is not None:
            item["bbox"] = rec.amodal.as_list(2)
            item["modal_bbox"] = rec.visible.as_list(2)
        else:
            item["bbox"] = rec.visible.as_list(2)
        item["expr_type"] = rec.expr_type
        lines.append(json.dumps(item))
    path = out / ("synthetic_amodal.jsonl" if amodal else "synthetic.jsonl")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
