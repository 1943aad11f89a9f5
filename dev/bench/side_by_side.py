"""Side by side on one server: a plain client as a user would write it against egm_ros's grounder
with the OpenAI engine, the same amodal requests, 1 and 4 in flight (``side_by_side`` in
``bench.json``).

The plain client is what one writes with the ``openai`` package and the EGM prompt: one
non-streaming chat completion per query, the visible query and then the amodal one. egm_ros
sends both queries of an amodal command at once (the server batches them) and streams each,
stopping once the answer is complete. Both send the image file's own bytes, greedy decoding:
their boxes should be identical, and the report says whether they are.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dev.stats import summary

#: The EGM authors' prompts for the EGM-Qwen checkpoints (``qwen3`` / ``qwen3_amodal`` in their
#: ``vllm_infer.py``), as a user copies them into a script.
PLAIN_VISIBLE = "Locate {}, output its bbox coordinates using JSON format"
PLAIN_AMODAL = "Locate {} amodally, output its bbox coordinates using JSON format"


@dataclass(frozen=True)
class Query:
    """One amodal request: an image file and a referring expression."""

    image: Path
    expression: str


@dataclass
class Answer:
    """What one client got for a query: boxes (visible, amodal; source pixels, rounded),
    completion tokens, and the wall time of the whole amodal request."""

    visible: tuple
    amodal: tuple
    tokens: int
    ms: float


def scene_queries(folder: Path, count: int, per_scene: int = 4) -> list[Query]:
    """``count`` amodal requests on synthetic table-top scenes (the embedded model's world),
    each scene saved as a PNG file as a user would have it, ``per_scene`` expressions each."""
    from PIL import Image

    from egm_ros.data.expressions import expressions
    from egm_ros.data.scenes import generate_scene

    folder.mkdir(parents=True, exist_ok=True)
    out: list[Query] = []
    seed = 300
    while len(out) < count:
        scene = generate_scene(seed)
        path = folder / f"scene_{seed}.png"
        Image.fromarray(scene.image).save(path)
        texts = sorted({e.text for e in expressions(scene)}, key=len)
        step = max(1, len(texts) // per_scene)
        out += [Query(path, text) for text in texts[::step][:per_scene]]
        seed += 1
    return out[:count]


class PlainClient:
    """The plain client: ``openai.OpenAI(...).chat.completions.create`` twice per command."""

    def __init__(self, base_url: str, model: str, max_tokens: int) -> None:
        import openai

        self.client = openai.OpenAI(base_url=base_url, api_key="EMPTY")
        self.model, self.max_tokens = model, max_tokens

    def ask(self, image_url: str, text: str) -> tuple[str, int]:
        reply = self.client.chat.completions.create(
            model=self.model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image_url}},
                        {"type": "text", "text": text},
                    ],
                }
            ],
            max_tokens=self.max_tokens,
            temperature=0.0,
        )
        usage = reply.usage.completion_tokens if reply.usage else 0
        return reply.choices[0].message.content or "", usage

    def ground(self, query: Query, data: bytes) -> tuple[str, str, int]:
        """The visible answer, then the amodal one, and their tokens."""
        mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        url = f"data:{mime};base64," + base64.b64encode(data).decode()
        visible, n_visible = self.ask(url, PLAIN_VISIBLE.format(query.expression))
        amodal, n_amodal = self.ask(url, PLAIN_AMODAL.format(query.expression))
        return visible, amodal, n_visible + n_amodal

    def close(self) -> None:
        self.client.close()


def boxes_of(text: str, size: tuple[int, int], clip: bool) -> tuple:
    """The boxes of an answer in source pixels, through egm_ros's parser (for comparing the
    two clients' answers; outside the timed part)."""
    from egm_ros.core.families import Family
    from egm_ros.core.parsing import parse_answer

    parsed = parse_answer(text, Family.QWEN3_VL, size, clip=clip)
    return tuple(sorted(_rounded(box) for box, _ in parsed.boxes))


def _rounded(box: Any) -> tuple[float, ...]:
    return (round(box.x1, 1), round(box.y1, 1), round(box.x2, 1), round(box.y2, 1))


def plain_answer(client: PlainClient, query: Query, data: bytes, size: tuple[int, int]) -> Answer:
    t0 = time.monotonic()
    visible, amodal, tokens = client.ground(query, data)
    ms = (time.monotonic() - t0) * 1000.0
    return Answer(boxes_of(visible, size, True), boxes_of(amodal, size, False), tokens, ms)


def egm_answer(grounder: Any, query: Query, rgb: np.ndarray, encoded: Any) -> Answer:
    from egm_ros.core.types import Mode

    t0 = time.monotonic()
    outcome = grounder.ground(rgb, query.expression, Mode.AMODAL, encoded=encoded)
    ms = (time.monotonic() - t0) * 1000.0
    visible = tuple(sorted(_rounded(o.visible) for o in outcome.objects if o.visible))
    amodal = tuple(sorted(_rounded(o.amodal) for o in outcome.objects if o.amodal))
    return Answer(visible, amodal, outcome.tokens, ms)


def timed_level(ask: Callable[[int], Answer], n: int, in_flight: int) -> tuple[list[Answer], dict]:
    """``n`` requests with ``in_flight`` of them outstanding: the answers and the row."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(in_flight) as pool:
        answers = list(pool.map(ask, range(n)))
    wall = time.monotonic() - t0
    return answers, level_row(answers, in_flight, wall)


def level_row(answers: Sequence[Answer], in_flight: int, wall_s: float) -> dict[str, Any]:
    lat = summary([a.ms for a in answers])
    return {
        "in_flight": in_flight,
        "requests": len(answers),
        "p50_ms": lat.get("p50_ms"),
        "p95_ms": lat.get("p95_ms"),
        "throughput_rps": round(len(answers) / wall_s, 3) if wall_s > 0 else None,
        "tokens_mean": round(float(np.mean([a.tokens for a in answers])), 1) if answers else None,
    }


def run(base_url: str, model: str, queries: Sequence[Query], max_tokens: int) -> dict[str, Any]:
    """Both clients on the server at ``base_url``: 1 in flight (the two alternating request by
    request, so a change in the machine's load hits both), then 4 in flight each."""
    from egm_ros.core.compressed import read_image_file
    from egm_ros.core.engine import SamplingParams
    from egm_ros.core.families import Family
    from egm_ros.core.grounder import Grounder, GrounderConfig
    from egm_ros.engines.openai_engine import OpenAIEngine

    files = [read_image_file(q.image) for q in queries]  # rgb and the file's own bytes
    raw = [q.image.read_bytes() for q in queries]
    sizes = [(rgb.shape[1], rgb.shape[0]) for rgb, _ in files]
    engine = OpenAIEngine(base_url, model, timeout=600.0)
    config = GrounderConfig(
        family=Family.QWEN3_VL, sampling=SamplingParams(max_new_tokens=max_tokens), timeout=600.0
    )
    grounder = Grounder(engine, config)
    plain = PlainClient(base_url, model, max_tokens)

    def ask_plain(i: int) -> Answer:
        return plain_answer(plain, queries[i], raw[i], sizes[i])

    def ask_egm(i: int) -> Answer:
        return egm_answer(grounder, queries[i], *files[i])

    try:
        for i in range(min(2, len(queries))):  # warm-up, not counted
            ask_plain(i), ask_egm(i)
        t_plain = t_egm = 0.0
        one_plain, one_egm = [], []
        for i in range(len(queries)):
            one_plain.append(ask_plain(i))
            t_plain += one_plain[-1].ms / 1000.0
            one_egm.append(ask_egm(i))
            t_egm += one_egm[-1].ms / 1000.0
        four_plain, row_plain4 = timed_level(ask_plain, len(queries), 4)
        four_egm, row_egm4 = timed_level(ask_egm, len(queries), 4)
    finally:
        plain.close()
        engine.close()
    return summarise(
        [level_row(one_plain, 1, t_plain), row_plain4],
        [level_row(one_egm, 1, t_egm), row_egm4],
        one_plain + four_plain,
        one_egm + four_egm,
    )


def summarise(
    plain_rows: list[dict], egm_rows: list[dict], plain: Sequence[Answer], egm: Sequence[Answer]
) -> dict[str, Any]:
    """The ``side_by_side`` section: each client's rows, egm_ros's p50 over the plain
    client's at 1 in flight, and whether every answer's boxes are the same."""
    pairs = zip(plain, egm, strict=True)
    same = sum(p.visible == e.visible and p.amodal == e.amodal for p, e in pairs)
    ratios = {}
    for p_row, e_row in zip(plain_rows, egm_rows, strict=True):
        if p_row["p50_ms"] and e_row["p50_ms"] is not None:
            ratios[p_row["in_flight"]] = round(e_row["p50_ms"] / p_row["p50_ms"], 2)
    return {
        "mode": "amodal",
        "plain_client": plain_rows,
        "egm_ros": egm_rows,
        "amodal_latency_ratio_p50": ratios.get(1),
        "amodal_latency_ratio_p50_by_in_flight": ratios,
        "answers_identical": same == len(plain) and len(plain) > 0,
        "identical_answers": f"{same}/{len(plain)}",
    }


def main(argv: Sequence[str] | None = None) -> int:
    """This section alone: its own vLLM server on loopback, the report section printed."""
    import argparse
    import json

    from dev.bench.ros_bench import VLLMServer

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m dev.bench.side_by_side", description=__doc__)
    parser.add_argument("--model", default=str(root / "egm_ros" / "models" / "egm_tiny"))
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--out", default="out/bench/side_by_side.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    queries = scene_queries(out.parent / "side_by_side", args.requests)
    with VLLMServer(args.model, "egm-bench", out.parent / "logs" / "vllm_side_by_side.log") as srv:
        section = run(srv.base_url, srv.name, queries, args.max_new_tokens)
    out.write_text(json.dumps({"side_by_side": section}, indent=2) + "\n")
    print(json.dumps(section, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
