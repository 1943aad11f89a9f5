"""``egm-eval --protocol authors``: the EGM authors' evaluation loop (zgq1879/EGM
``verl/scripts/vllm_infer.py``), to reproduce their numbers exactly.

Per record one query, straight to the engine (no grounder): their prompt for the family
(:func:`~egm_ros.core.prompts.build_prompt`; the amodal one for records with both ``bbox`` and
``modal_bbox``), the expression as written, the image file's own bytes and never resized, the
sampling settings given (their greedy defaults, 4096 tokens), the whole completion (no early
stop), then their parsing, integer scaling and IoU (:mod:`egm_ros.core.authors_eval`) against
``bbox`` (``modal_bbox`` when a record has no ``bbox``). A completion without a box scores 0.

Where this differs from their script: a failed request (HTTP error, timeout) scores 0 and is
counted by status, where their run stops; a record whose image is not ``width`` x ``height`` is
``invalid_input`` (their script stops on it too).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from egm_ros.core.authors_eval import authors_box, authors_iou, scale_bbox
from egm_ros.core.compressed import read_image_file
from egm_ros.core.engine import Engine, EngineRequest, SamplingParams
from egm_ros.core.families import Family
from egm_ros.core.prompts import build_prompt
from egm_ros.core.types import GroundingError, Mode, Status
from egm_ros.data.eval_records import EvalRecord


@dataclass
class AuthorsResult:
    """One record under the authors' rules: their box (integer pixels) and IoU."""

    status: Status
    iou: float = 0.0
    box: list[float] | None = None
    tokens: int = 0
    latency_ms: float = 0.0
    message: str = ""


def authors_truth(rec: EvalRecord) -> list[float]:
    """Their ground truth: ``bbox`` (the amodal box of an amodal set), else ``modal_bbox``."""
    box = rec.amodal if rec.amodal is not None else rec.visible
    return [box.x1, box.y1, box.x2, box.y2]


def authors_mode(rec: EvalRecord) -> Mode:
    return Mode.AMODAL if rec.amodal is not None else Mode.VISIBLE


def run_record(
    engine: Engine,
    rec: EvalRecord,
    family: Family,
    sampling: SamplingParams,
    timeout: float,
    template_kwargs: dict | None = None,
) -> AuthorsResult:
    """One record; never raises for engine or input faults."""
    try:
        rgb, encoded = (rec.rgb, None) if rec.rgb is not None else read_image_file(rec.image)
    except GroundingError as err:
        return AuthorsResult(err.status, message=err.message)
    height, width = rgb.shape[:2]
    if (width, height) != (rec.width, rec.height):
        message = f"image is {width}x{height}, the record says {rec.width}x{rec.height}"
        return AuthorsResult(Status.INVALID_INPUT, message=message)
    request = EngineRequest(
        image=rgb,
        encoded=encoded,
        prompt=build_prompt(rec.sent, authors_mode(rec), family),
        sampling=replace(sampling),
        chat_template_kwargs=template_kwargs,
    )
    start = time.monotonic()
    try:
        (output,) = engine.generate([request], timeout=timeout)
    except GroundingError as err:
        return AuthorsResult(err.status, message=err.message)
    latency_ms = (time.monotonic() - start) * 1000.0
    raw = authors_box(output.text)
    box = scale_bbox(raw, width, height) if raw is not None else None
    return AuthorsResult(
        Status.OK if box is not None else Status.MALFORMED_OUTPUT,
        iou=authors_iou(box, authors_truth(rec)),
        box=box,
        tokens=output.tokens,
        latency_ms=latency_ms,
        message="" if box is not None else "no box in the completion",
    )


def evaluate_authors(
    engine: Engine,
    records: Sequence[EvalRecord],
    family: Family,
    sampling: SamplingParams,
    timeout: float,
    *,
    thinking: bool = True,
    concurrency: int = 1,
) -> list[AuthorsResult]:
    """Every record (``concurrency`` in flight; the authors run 64), in order."""
    kwargs = None if thinking else {"enable_thinking": False}
    done, lock = [0], threading.Lock()
    progress = sys.stderr.isatty()

    def one(rec: EvalRecord) -> AuthorsResult:
        result = run_record(engine, rec, family, sampling, timeout, kwargs)
        if progress:
            with lock:
                done[0] += 1
                print(f"\r{done[0]}/{len(records)} evaluated", end="", file=sys.stderr)
        return result

    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, records))
    if progress:
        print(file=sys.stderr)
    return results
