"""``python -m dev.soak`` (``make soak``): start the engine and the node, drive them, report."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from dev.node_process import NodeProcess
from dev.scripted_server import ServerProcess
from dev.soak.driver import Driver, scripted
from dev.soak.report import Report, build_report, format_report


def node_params(args: argparse.Namespace, base_url: str) -> dict[str, object]:
    """The grounding node's parameters for this run."""
    params: dict[str, object] = {
        "backend": args.backend,
        "request_timeout": args.request_timeout,
        "queue_size": args.queue_size,
        "workers": args.workers,
        "frame_buffer_seconds": 2.0,
        "frame_stamp_tolerance": 0.1,
    }
    if args.backend == "openai":
        params["base_url"] = base_url
        params["model_family"] = args.family or "qwen3_vl"
    elif args.family:
        params["model_family"] = args.family
    if args.model:
        params["model"] = args.model
    if args.cpu_threads is not None:
        params["cpu_threads"] = args.cpu_threads
    return params


def _engine_failure(log: Path) -> str:
    """The node's "cannot load the engine" line (it stays unconfigured and never subscribes)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    line = next((ln for ln in text.splitlines() if "cannot load the engine" in ln), "")
    return line.split("cannot load the engine: ", 1)[-1]


def _wait_until_connected(node: NodeProcess, driver: Driver, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not driver.connected():
        if not node.alive():
            raise RuntimeError(f"the grounding node exited; see {node.log_path}")
        failed = _engine_failure(node.log_path)
        if failed:
            raise RuntimeError(f"the grounding node has no engine: {failed}")
        if time.monotonic() > deadline:
            raise RuntimeError("the grounding node did not come up")
        time.sleep(0.1)


def _drive(args: argparse.Namespace, node: NodeProcess, driver: Driver) -> list[tuple[float, int]]:
    """Commands for ``args.seconds``, then every straggler's result; the node's RSS samples
    (seconds since the first command, kB)."""
    rss: list[tuple[float, int]] = []
    start = time.monotonic()
    driver.start_commands()
    next_report = start + args.progress
    while (now := time.monotonic()) < start + args.seconds:
        kb = node.rss_kb()
        if kb is not None:
            rss.append((now - start, kb))
        if not node.alive():
            raise RuntimeError(f"the grounding node died; see {node.log_path}")
        if args.progress and now >= next_report:
            next_report += args.progress
            print(
                f"  {now - start:5.0f} s  sent {driver.total_sent}  received "
                f"{driver.total_received}  node RSS {kb / 1024 if kb else 0:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(1.0)
    driver.stop_commands()
    # Every command must be answered: wait for the stragglers (a hang lasts one timeout,
    # retries add their backoff), then for one more /diagnostics message.
    drain = time.monotonic() + args.request_timeout * 2 + 10
    while driver.total_received < driver.total_sent and time.monotonic() < drain:
        time.sleep(0.1)
    settle = time.monotonic() + 5
    while time.monotonic() < settle and driver.node_requests() < driver.total_received:
        time.sleep(0.1)  # diagnostics come once a second: wait for one counting all
    kb = node.rss_kb()
    if kb is not None:
        rss.append((time.monotonic() - start, kb))
    return rss


def run(args: argparse.Namespace) -> Report:
    """Start the engine and the node, drive them for ``args.seconds``, and measure."""
    namespace = f"/egm_soak_{os.getpid()}"
    server = None
    base_url = args.base_url or ""
    engine = f"{args.backend} {args.model}".strip()
    if args.backend == "openai" and not args.base_url:
        server = ServerProcess("--script", "soak", "--hang-seconds", str(args.request_timeout + 5))
        base_url = server.start()
        engine = "scripted OpenAI-compatible server (scripted answers, no model)"
    elif args.backend == "openai":
        engine = f"OpenAI-compatible server at {base_url}"
    log_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="egm_soak_"))
    node = NodeProcess(namespace, node_params(args, base_url), log_dir / "node.log")
    driver = None
    try:
        driver = Driver(args, namespace)
        _wait_until_connected(node, driver, args.startup_timeout)
        time.sleep(1.0)  # a few frames into the buffer
        warmup = args.warmup if args.warmup is not None else min(30.0, args.seconds / 5)
        rss = _drive(args, node, driver)
        return build_report(args, driver, engine, rss, warmup)
    finally:
        if driver is not None:
            driver.close()
        node.stop(timeout=20)
        if server is not None:
            server.kill()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="egm-soak",
        description="Run the grounding node under load for a set time and report sent vs "
        "received commands, errors by kind, queue high-water mark, latency and memory.",
    )
    parser.add_argument("--seconds", type=float, default=600.0, help="default 600 (10 minutes)")
    parser.add_argument("--image-hz", type=float, default=30.0)
    parser.add_argument("--command-hz", type=float, default=5.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument(
        "--scenes", type=int, default=12, help="synthetic scenes shown in turn (default 12)"
    )
    parser.add_argument(
        "--scene-seconds", type=float, default=10.0, help="seconds each scene is shown"
    )
    parser.add_argument(
        "--backend",
        choices=("openai", "embedded", "transformers", "vllm", "tensorrt_llm"),
        default="openai",
        help="openai (default): the scripted server, or --base-url",
    )
    parser.add_argument("--base-url", default="", help="openai: a running server to use instead")
    parser.add_argument("--model", default="", help="model folder or name")
    parser.add_argument("--family", default="", help="model_family ('' = detect)")
    parser.add_argument(
        "--cpu-threads", type=int, default=None, help="the node's cpu_threads (default: its own)"
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=None,
        help="the node's request_timeout: default 5 s with the scripted server (a hang lasts "
        "one timeout), 60 s (the node's default) with a model",
    )
    parser.add_argument("--queue-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--no-faults",
        dest="faults",
        action="store_false",
        help="only well-formed commands",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before the start RSS sample (default: a fifth of the run, at most 30)",
    )
    parser.add_argument("--max-rss-growth-mb", type=float, default=50.0)
    parser.add_argument(
        "--min-answered",
        type=float,
        default=0.9,
        help="share of well-formed commands that must end ok or not_found (default 0.9)",
    )
    parser.add_argument(
        "--max-no-frame",
        type=int,
        default=0,
        help="no_frame results allowed for commands without a frame_stamp (default 0)",
    )
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--progress", type=float, default=60.0, help="seconds; 0 = quiet")
    parser.add_argument("--json", default="", help="write the report as JSON here")
    parser.add_argument("--out", default="", help="folder for node.log (default: a temp dir)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.request_timeout is None:
        args.request_timeout = 5.0 if scripted(args) else 60.0
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    try:
        report = run(args)
    except (RuntimeError, OSError) as err:
        print(f"egm-soak: error: {err}", file=sys.stderr)
        return 1
    print(format_report(report), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
