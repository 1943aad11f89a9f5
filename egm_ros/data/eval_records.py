"""Evaluation records in the EGM authors' format: JSON lines with ``image`` (path), ``sent``,
``bbox`` (pixel x1, y1, x2, y2), ``width``, ``height``; amodal sets name the visible box
``modal_bbox`` (and ``bbox`` is then the amodal box). Extra keys are ignored, so the authors'
RefCOCO files work as they are. Image paths are relative to the file's folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egm_ros.core.geometry import make_box
from egm_ros.core.types import Box


@dataclass
class EvalRecord:
    image: str  # path, or "" when ``rgb`` is given
    sent: str
    visible: Box | None
    amodal: Box | None
    width: int
    height: int
    rgb: np.ndarray | None = None  # in-memory image (synthetic sets)


def _box(values, where: str) -> Box:
    if not isinstance(values, list | tuple) or len(values) != 4:
        raise ValueError(f"{where}: expected [x1, y1, x2, y2], got {values!r}")
    return make_box(*(float(v) for v in values))


def read_records(path: str | Path) -> list[EvalRecord]:
    """Records of a JSONL file; a bad line raises ``ValueError`` naming the line."""
    path = Path(path)
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
            image = Path(item["image"])
            amodal_set = "modal_bbox" in item
            bbox = _box(item["bbox"], where)
            records.append(
                EvalRecord(
                    image=str(image if image.is_absolute() else path.parent / image),
                    sent=str(item["sent"]),
                    visible=_box(item["modal_bbox"], where) if amodal_set else bbox,
                    amodal=bbox if amodal_set else None,
                    width=int(item["width"]),
                    height=int(item["height"]),
                )
            )
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"{where}: bad record ({err})") from None
    return records


def synthetic_records(seed: int, n: int, amodal: bool) -> list[EvalRecord]:
    """``n`` held-out synthetic samples (seeds from ``seed``; training uses seeds >= 1e6)."""
    from egm_ros.data.expressions import samples

    out: list[EvalRecord] = []
    for scene, sample in samples(range(seed, seed + 10 * n + 10), amodal=amodal, per_scene=1):
        target = scene.objects[sample.target]
        w, h = scene.size
        out.append(
            EvalRecord(
                "",
                sample.expression,
                target.visible,
                target.amodal if amodal else None,
                w,
                h,
                rgb=scene.image,
            )
        )
        if len(out) == n:
            break
    return out


def write_synthetic_set(out_dir: str | Path, seed: int, n: int, amodal: bool) -> Path:
    """Render a synthetic set to PNGs and a JSONL file in the authors' format."""
    from PIL import Image

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, rec in enumerate(synthetic_records(seed, n, amodal)):
        name = f"images/{seed}_{i:05d}.png"
        Image.fromarray(rec.rgb).save(out / name)
        item = {"image": name, "sent": rec.sent, "width": rec.width, "height": rec.height}
        if amodal:
            item["bbox"] = rec.amodal.as_list(2)
            item["modal_bbox"] = rec.visible.as_list(2)
        else:
            item["bbox"] = rec.visible.as_list(2)
        lines.append(json.dumps(item))
    path = out / ("synthetic_amodal.jsonl" if amodal else "synthetic.jsonl")
    path.write_text("\n".join(lines) + "\n")
    return path
