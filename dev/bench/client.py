"""The end-to-end benchmark's client, in its own process: ``python -m dev.bench.client``.

It plays the camera (a frame every 0.25 s into each namespace) and the user (``grounding_command``
with request ids, a fixed number in flight) and times each command from publish to its
``result``, with one ``SingleThreadedExecutor`` and nothing else in the process, as a user's own
client node would run. The benchmark drives it over stdin/stdout, one JSON object per line:

- first line: ``{"cameras": [{"namespace", "frame_id", "stamp", "prompts", "shape", "rgb"}]}``
  (``rgb``: the frame's bytes in base64); the reply is ``{"ready": true}``;
- ``{"op": "connected", "namespace": NS}`` -> ``{"connected": bool}``;
- ``{"op": "run", "per_namespace": {NS: n}, "in_flight": k, "timeout": s}`` -> ``{"records":
  [...], "wall_s": s, "misrouted": n}`` once every result is in or ``timeout`` has passed;
- ``{"op": "close"}`` or the end of stdin ends it.

Why a process of its own: in the benchmark's process, a ``MultiThreadedExecutor`` spinning in a
background thread added up to seconds between a result's publication and its callback (see
the README's benchmark section); a client here is measured, not measuring itself.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Period of the client's camera frames (the node keeps them ``frame_buffer_seconds``).
CAMERA_PERIOD_S = 0.25


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
    def outside_node_ms(self) -> float | None:
        """The round trip less the node's own total (``LatencyBreakdown.total_ms``, from the
        command's arrival to its result): command and result delivery, the result message's
        publication and the client's callback."""
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
    endpoints: dict[str, Any] = field(default_factory=dict)  # publishers, subscription
    message: Any = None


class ClientNode:
    """The ROS side: publishers and subscriptions per camera, the records of one run. Its
    callbacks run on whichever executor spins ``node``; nothing here starts a thread."""

    def __init__(self, context: Any, cameras: list[Camera]) -> None:
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from egm_ros.msg import GroundingCommand, GroundingResult
        from egm_ros.node.conversions import rgb_to_image_msg

        self._command_type = GroundingCommand
        self.node = Node("egm_bench_client", context=context)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.cameras = {c.namespace: c for c in cameras}
        for cam in cameras:
            header = Header(frame_id=cam.frame_id)
            header.stamp.sec, header.stamp.nanosec = cam.stamp
            cam.message = rgb_to_image_msg(cam.rgb, header)
            cam.endpoints["image"] = self.node.create_publisher(
                Image, f"{cam.namespace}/image_raw", qos_profile_sensor_data
            )
            cam.endpoints["command"] = self.node.create_publisher(
                GroundingCommand, f"{cam.namespace}/grounding_command", reliable
            )
            cam.endpoints["result"] = self.node.create_subscription(
                GroundingResult,
                f"{cam.namespace}/result",
                lambda msg, ns=cam.namespace: self._on_result(ns, msg),
                reliable,
            )
        self.node.create_timer(CAMERA_PERIOD_S, self._publish_frames)
        self._lock = threading.Lock()  # the in-thread variant reads records from another thread
        self._ids = 0
        self._pending: dict[str, Record] = {}
        self._queues: dict[str, list[str]] = {}
        self._records: list[Record] = []
        self.misrouted = 0
        self.on_done: Callable[[], None] | None = None

    def _publish_frames(self) -> None:
        for cam in self.cameras.values():
            cam.endpoints["image"].publish(cam.message)

    def connected(self, namespace: str) -> bool:
        """The node in ``namespace`` is matched both ways: it reads our frames and commands,
        and our result subscription is matched with its publisher (a publisher merely seen in
        the graph may not deliver yet, and a result published before the match is lost)."""
        cam = self.cameras[namespace]
        return (
            cam.endpoints["command"].get_subscription_count() > 0
            and cam.endpoints["image"].get_subscription_count() > 0
            and cam.endpoints["result"].get_publisher_count() > 0
        )

    def start_run(self, per_namespace: Mapping[str, int], in_flight: int) -> None:
        """Queue ``per_namespace[ns]`` commands for each namespace and send the first
        ``in_flight`` of each; every result sends the next one of its namespace."""
        with self._lock:
            self._records, self._pending = [], {}
            self._queues = {
                ns: [self.cameras[ns].prompts[i % len(self.cameras[ns].prompts)] for i in range(n)]
                for ns, n in per_namespace.items()
            }
        for ns in per_namespace:
            for _ in range(in_flight):
                self._send_next(ns)

    @property
    def finished(self) -> bool:
        with self._lock:
            return not self._pending and not any(self._queues.values())

    def take_records(self) -> list[Record]:
        """This run's records, answered or not, and the end of the run."""
        with self._lock:
            records = self._records + list(self._pending.values())
            self._records, self._pending, self._queues = [], {}, {}
        return records

    def _send_next(self, namespace: str) -> None:
        with self._lock:
            queue_ = self._queues.get(namespace)
            if not queue_:
                return
            prompt = queue_.pop(0)
            self._ids += 1
            record = Record(namespace, f"{namespace.strip('/')}-{self._ids}", prompt, 0.0)
            self._pending[record.request_id] = record
            msg = self._command_type(
                prompt=prompt, request_id=record.request_id, mode=self._command_type.MODE_VISIBLE
            )
            record.sent = time.monotonic()
        self.cameras[namespace].endpoints["command"].publish(msg)

    def _on_result(self, namespace: str, msg: Any) -> None:
        now = time.monotonic()
        with self._lock:
            record = self._pending.get(msg.request_id)
            if record is None or record.namespace != namespace:
                self.misrouted += 1
                return
            del self._pending[msg.request_id]
            fill_record(record, msg, now)
            self._records.append(record)
        self._send_next(namespace)
        if self.on_done is not None and self.finished:
            self.on_done()


def fill_record(record: Record, msg: Any, received: float) -> None:
    """What the client keeps of a ``GroundingResult``."""
    record.received = received
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


# --------------------------------------------------------------------------- wire format
def camera_to_json(cam: Camera) -> dict[str, Any]:
    return {
        "namespace": cam.namespace,
        "frame_id": cam.frame_id,
        "stamp": list(cam.stamp),
        "prompts": list(cam.prompts),
        "shape": list(cam.rgb.shape),
        "rgb": base64.b64encode(np.ascontiguousarray(cam.rgb).tobytes()).decode(),
    }


def camera_from_json(d: Mapping[str, Any]) -> Camera:
    rgb = np.frombuffer(base64.b64decode(d["rgb"]), np.uint8).reshape(d["shape"])
    return Camera(d["namespace"], rgb, d["frame_id"], tuple(d["stamp"]), list(d["prompts"]))


def record_to_json(record: Record) -> dict[str, Any]:
    return dataclasses.asdict(record)


def record_from_json(d: Mapping[str, Any]) -> Record:
    """A record as it was: JSON turned its tuples into lists."""
    return Record(**{k: _tuples(v) for k, v in d.items()})


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- the process
class _Server:
    """Answers the benchmark's requests from the executor's thread: a guard condition wakes
    the executor for each line that stdin's reader thread queued."""

    def __init__(self, client: ClientNode, write: Callable[[dict], None]) -> None:
        self.client, self.write = client, write
        self.lines: queue.Queue[dict | None] = queue.Queue()
        self.closed = False
        self._timeout_timer: Any = None
        self._run_started = 0.0
        self.wake = client.node.create_guard_condition(self._on_wake)
        client.on_done = self._reply_run

    def _on_wake(self) -> None:
        while not self.lines.empty():
            request = self.lines.get_nowait()
            if request is None or request.get("op") == "close":
                self.closed = True
                return
            if request["op"] == "connected":
                self.write({"connected": self.client.connected(request["namespace"])})
            elif request["op"] == "run":
                self._start_run(request)

    def _start_run(self, request: Mapping[str, Any]) -> None:
        self._run_started = time.monotonic()
        self._timeout_timer = self.client.node.create_timer(
            float(request["timeout"]), self._reply_run
        )
        self.client.start_run(request["per_namespace"], int(request["in_flight"]))
        if self.client.finished:  # nothing to send
            self._reply_run()

    def _reply_run(self) -> None:
        if self._timeout_timer is None:
            return  # answered already (the last result and the timeout can both call)
        self.client.node.destroy_timer(self._timeout_timer)
        self._timeout_timer = None
        wall = time.monotonic() - self._run_started
        records = [record_to_json(r) for r in self.client.take_records()]
        self.write({"records": records, "wall_s": wall, "misrouted": self.client.misrouted})


def main() -> int:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    def write(reply: dict) -> None:
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    setup = json.loads(sys.stdin.readline())
    context = Context()
    rclpy.init(context=context)
    client = ClientNode(context, [camera_from_json(c) for c in setup["cameras"]])
    server = _Server(client, write)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client.node)

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip():
                server.lines.put(json.loads(line))
                server.wake.trigger()
        server.lines.put(None)
        server.wake.trigger()

    threading.Thread(target=read_stdin, daemon=True).start()
    write({"ready": True})
    try:
        while not server.closed and context.ok():
            executor.spin_once(timeout_sec=1.0)
    finally:
        executor.shutdown(timeout_sec=5)
        client.node.destroy_node()
        context.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
