"""``make bench`` / ``python -m dev.bench``: every benchmark of issues #8 and #17 in one run, one
JSON file (``out/bench/bench.json``, a copy in ``out/bench/runs/``) and short tables.

1. overhead of the node path without the model (4 resolutions; raw, compressed, and compressed
   with ``max_pixels`` 0) and the full-frame copies one request makes; the 3D step
   (``use_depth``) at 640x480;
2. end to end through ROS topics with the embedded model (a ``grounding_node`` process with
   the transformers engine, a client process of its own): p50/p95, the split into waiting,
   preprocessing and inference, and the part outside the node; throughput and latency with 1,
   2, 4, 8 commands in flight; the node's peak RSS;
3. the OpenAI engine against a real vLLM server on loopback serving the same model: end to end,
   several nodes sharing that server (each must get its own results; latency alone vs
   shared), and a plain ``openai`` client side by side with egm_ros's grounder.

The embedded model is EGM-Tiny once ``egm_ros/models/egm_tiny/model.safetensors`` exists;
until then a random model of the same size is built and the report says so (its latencies are
those of the architecture, its answers are noise). ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dev.bench import depth_step, overhead, side_by_side
from dev.bench.report import PAPER_MS, SECTIONS, missing_keys, skipped, write_report
from dev.bench.summary import OPTIONAL, goals, tables

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_DIR = ROOT / "egm_ros" / "models" / "egm_tiny"
LEVELS = (1, 2, 4, 8)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dev.bench", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/bench/bench.json", help="the JSON report")
    p.add_argument("--quick", action="store_true", help="few repeats and commands: a smoke run")
    p.add_argument(
        "--backend",
        choices=("embedded", "transformers"),
        default=None,
        help="embedded (EGM-Tiny, the default once it ships) or transformers with --model",
    )
    p.add_argument("--model", default="", help="model folder for --backend transformers")
    p.add_argument("--max-new-tokens", type=int, default=256, help="generation limit per query")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads of the embedded node (its cpu_threads; 0 = torch's default)",
    )
    p.add_argument("--repeats", type=int, default=None, help="overhead repeats (default 30)")
    p.add_argument("--requests", type=int, default=None, help="end-to-end commands (default 20)")
    p.add_argument("--nodes", type=int, default=None, help="nodes sharing one server (default 3)")
    p.add_argument("--skip-ros", action="store_true", help="only the overhead section")
    p.add_argument("--skip-vllm", action="store_true", help="no vLLM server sections")
    return p


# --------------------------------------------------------------------------- model choice
def choose_model(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Which model the node runs: the trained EGM-Tiny, a given folder, or a random model of
    EGM-Tiny's size (so the latency is that of the shipped architecture)."""
    trained = (EMBEDDED_DIR / "model.safetensors").is_file()
    if args.model:
        return {
            "backend": "transformers",
            "path": str(Path(args.model).resolve()),
            "name": Path(args.model).name,
            "weights": "given folder",
        }
    if args.backend != "transformers" and trained:
        return {
            "backend": "embedded",
            "path": str(EMBEDDED_DIR),
            "name": "EGM-Tiny (embedded, trained)",
            "weights": "trained",
        }
    folder = work / "random_egm_tiny"
    if not (folder / "model.safetensors").is_file():
        from egm_ros.models.tiny_qwen3_vl import build_tiny_model
        from egm_ros.training.train import EGM_TINY

        build_tiny_model(folder, seed=0, config=EGM_TINY)
    return {
        "backend": "transformers",
        "path": str(folder),
        "name": "random model of EGM-Tiny's size (untrained)",
        "weights": "random: latency of the architecture, answers are noise",
    }


def model_parameters(path: str) -> int | None:
    try:
        from safetensors import safe_open

        with safe_open(str(Path(path) / "model.safetensors"), "np") as f:
            return int(sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()))
    except Exception:  # noqa: BLE001 - informative only
        return None


# --------------------------------------------------------------------------- the scenes
def cameras(count: int, prompts_per_camera: int = 4) -> list:
    """One synthetic table-top scene per node (the embedded model's world), with referring
    expressions of that scene as the commands."""
    from dev.bench.ros_bench import Camera
    from egm_ros.data.expressions import expressions
    from egm_ros.data.scenes import generate_scene

    out = []
    for i in range(count):
        scene = generate_scene(100 + i)
        # By length, then text: a set's order changes with each process's string hashing, and
        # with it which commands a run sends (and how many tokens they take).
        texts = sorted({e.text for e in expressions(scene)}, key=lambda t: (len(t), t))
        step = max(1, len(texts) // prompts_per_camera)
        out.append(
            Camera(
                namespace=f"/egm_bench_{i}",
                rgb=scene.image,
                frame_id=f"bench_camera_{i}",
                stamp=(1000 + i, 5000 + i),
                prompts=texts[::step][:prompts_per_camera],
            )
        )
    return out


def node_params(model: dict[str, Any], max_new_tokens: int, **extra: object) -> dict[str, object]:
    params: dict[str, object] = {
        "backend": model["backend"],
        "model": "" if model["backend"] == "embedded" else model["path"],
        "model_family": "qwen3_vl",
        "workers": 8,
        "queue_size": 32,
        "max_new_tokens": max_new_tokens,
        "request_timeout": 600.0,
        "frame_buffer_seconds": 10.0,
    }
    params.update(extra)
    return params


# --------------------------------------------------------------------------- sections
def run_embedded(
    args: argparse.Namespace, model: dict[str, Any], n: int, levels: Sequence[int], logs: Path
) -> tuple[dict, list[dict], dict]:
    """End to end, concurrency and memory with the in-process engine in a node process."""
    from dev.bench.report import add_speedup
    from dev.bench.ros_bench import BenchClient, latency_section, throughput_row
    from dev.node_process import NodeProcess

    (cam,) = cameras(1)
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads > 0 else {}
    # The engine runs in the node's worker process, whose torch threads cpu_threads sets.
    params = node_params(model, args.max_new_tokens, cpu_threads=args.threads)
    node = NodeProcess(cam.namespace, params, logs / "embedded.log", env)
    client = BenchClient([cam], logs / "client_embedded.log")
    try:
        t0 = time.monotonic()
        client.wait_ready([node], timeout=600)
        load_s = time.monotonic() - t0
        rss_loaded = node.rss_mb()
        client.run({cam.namespace: 2}, 1, timeout=600)  # warm-up, not counted
        print(f"  embedded node ready in {load_s:.1f} s; end to end ({n} commands) ...")
        records, wall = client.run({cam.namespace: n}, 1, timeout=900)
        e2e = latency_section(records)
        rows = [throughput_row(records, 1, wall)]  # the end-to-end run is the 1-in-flight row
        for level in [x for x in levels if x > 1]:
            count = (2 if args.quick else 8) * level  # enough for a steady rate
            print(f"  {level} in flight ({count} commands) ...")
            recs, wall = client.run({cam.namespace: count}, level, timeout=900)
            rows.append(throughput_row(recs, level, wall))
        memory = {
            "node_peak_rss_mb": node.peak_rss_mb(),
            "node_rss_after_load_mb": rss_loaded,
            "model_load_s": round(load_s, 1),
            "note": "VmHWM of the grounding_node process over all the embedded runs",
        }
        return e2e, add_speedup(rows), memory
    finally:
        client.close()
        node.stop()


def run_openai(
    args: argparse.Namespace,
    model: dict[str, Any],
    n: int,
    nodes: int,
    per_node: int,
    logs: Path,
) -> tuple[dict, list[dict], dict, dict]:
    """One vLLM server on loopback: end to end and 1/4 in flight through one node, then
    ``nodes`` nodes alone and all at once; then, with the nodes stopped, the plain client and
    egm_ros's grounder side by side on the same server."""
    from dev.bench.ros_bench import VLLMServer

    print("  starting the vLLM server (about a minute) ...")
    with VLLMServer(model["path"], "egm-bench", logs / "vllm_server.log") as server:
        print(f"  vLLM server ready in {server.startup_ms / 1000:.0f} s")
        e2e, rows, multi = _openai_nodes(args, server.base_url, n, nodes, per_node, logs)
        e2e["server_startup_s"] = round(server.startup_ms / 1000, 1)
        count = 4 if args.quick else 20
        print(f"  side by side: a plain openai client and egm_ros, {count} amodal requests ...")
        queries = side_by_side.scene_queries(logs.parent / "side_by_side", count)
        pair = side_by_side.run(server.base_url, server.name, queries, args.max_new_tokens)
        return e2e, rows, multi, pair


def _openai_nodes(
    args: argparse.Namespace, base_url: str, n: int, nodes: int, per_node: int, logs: Path
) -> tuple[dict, list[dict], dict]:
    """Grounding nodes with the OpenAI engine on the server at ``base_url``: end to end, 4 in
    flight, then each node alone and all at once."""
    from dev.bench.report import add_speedup
    from dev.bench.ros_bench import BenchClient, latency_section, multi_node_section, throughput_row
    from dev.node_process import NodeProcess

    cams = cameras(nodes)
    params = node_params({"backend": "openai", "path": ""}, args.max_new_tokens, base_url=base_url)
    procs = [
        NodeProcess(c.namespace, params, logs / f"openai_node_{i}.log") for i, c in enumerate(cams)
    ]
    client = BenchClient(cams, logs / "client_openai.log")
    try:
        client.wait_ready(procs, timeout=300)
        first = cams[0].namespace
        client.run({first: 2}, 1, timeout=300)  # warm-up
        print(f"  openai end to end ({n} commands) ...")
        records, wall = client.run({first: max(n, per_node)}, 1, timeout=600)
        rows = [throughput_row(records, 1, wall)]
        count = (2 if args.quick else 8) * 4  # enough for a steady rate
        print(f"  4 in flight ({count} commands) ...")
        recs, wall = client.run({first: count}, 4, timeout=600)
        rows.append(throughput_row(recs, 4, wall))
        alone = list(records[:per_node])
        for cam in cams[1:]:
            alone += client.run({cam.namespace: per_node}, 1, timeout=600)[0]
        print(f"  {nodes} nodes sharing the server ({per_node} commands each) ...")
        shared, wall = client.run({c.namespace: per_node for c in cams}, 1, timeout=900)
        multi = multi_node_section(alone, shared, wall, cams, client.misrouted)
        return latency_section(records), add_speedup(rows), multi
    finally:
        client.close()
        for proc in procs:
            proc.stop()


# --------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    repeats = args.repeats or (5 if args.quick else 30)
    out = Path(args.out)
    started = time.monotonic()
    report: dict[str, Any] = {"meta": _meta(args)}
    report.update({name: {} for name in SECTIONS if name != "meta"})
    report["goals"] = []
    print(f"== node overhead ({repeats} repeats per row) ...", flush=True)
    report["overhead"] = overhead.run(repeats)
    print(f"== 3D step ({10 * repeats} repeats per row) ...", flush=True)
    report["overhead"]["depth_3d"] = depth_step.run(10 * repeats)
    model = choose_model(args, out.parent)
    model["parameters"] = model_parameters(model["path"])
    report["meta"]["model"] = model
    if args.skip_ros:
        for name in OPTIONAL:
            report[name] = skipped("--skip-ros")
    else:
        _ros_sections(args, model, report, out.parent / "logs")
    report["goals"] = goals(report)
    report["meta"]["duration_s"] = round(time.monotonic() - started, 1)
    report["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    assert not missing_keys(report), missing_keys(report)
    path = write_report(report, out)
    stamp = report["meta"]["date"].replace(":", "").replace("+0000", "")
    write_report(report, path.parent / "runs" / f"bench-{stamp}.json")  # for dev.bench.agree
    print()
    print(tables(report))
    print(f"\nwrote {path} in {report['meta']['duration_s']:.0f} s")
    return 0


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    machine = "CUDA GPU" if _has_cuda() else "no GPU"
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, {machine}",
        "python": platform.python_version(),
        "quick": args.quick,
        "max_new_tokens": args.max_new_tokens,
        "embedded_node_threads": args.threads or "torch default",
        "paper_ms_per_request": PAPER_MS,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _ros_sections(
    args: argparse.Namespace, model: dict[str, Any], report: dict[str, Any], logs: Path
) -> None:
    """The sections through ROS topics: the embedded node, then the vLLM server's."""
    quick = args.quick
    n = args.requests or (4 if quick else 20)
    print(f"== embedded engine through ROS topics: {model['name']}", flush=True)
    e2e, rows, memory = run_embedded(args, model, n, (1, 4) if quick else LEVELS, logs)
    report["end_to_end"]["embedded"] = e2e
    report["concurrency"]["embedded"] = rows
    report["memory"] = memory
    if args.skip_vllm or not _has_vllm():
        reason = "--skip-vllm" if args.skip_vllm else "vLLM is not installed"
        report["end_to_end"]["openai_vllm"] = skipped(reason)
        report["multi_node"] = skipped(reason)
        report["side_by_side"] = skipped(reason)
        return
    print("== OpenAI engine against a vLLM server on loopback", flush=True)
    nodes = args.nodes or (2 if quick else 3)
    e2e, rows, multi, pair = run_openai(args, model, n, nodes, 3 if quick else 8, logs)
    report["end_to_end"]["openai_vllm"] = e2e
    report["concurrency"]["openai_vllm"] = rows
    report["multi_node"] = multi
    report["side_by_side"] = pair


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
