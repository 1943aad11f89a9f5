"""The embedded default model, EGM-Tiny, shipped inside the package (``egm_ros/models/egm_tiny``):
what ``backend: embedded`` and ``egm-ground`` without ``--backend`` use. It was trained by
``egm-train`` on the project's synthetic table-top scenes only: it knows mugs, boxes, balls,
bottles and books on a table, nothing else."""

from __future__ import annotations

from pathlib import Path

from egm_ros.core.types import GroundingError, Status

EMBEDDED_NAME = "EGM-Tiny (embedded)"
NOTICE = (
    "the embedded EGM-Tiny model only knows the project's synthetic table-top scenes; "
    "use a real EGM checkpoint (--backend openai/vllm/transformers) for real images"
)


def embedded_model_dir() -> Path:
    path = Path(__file__).resolve().parent / "egm_tiny"
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise GroundingError(
            Status.ENGINE_UNAVAILABLE,
            f"the embedded EGM-Tiny model is missing from {path}; train it with egm-train",
        )
    return path
