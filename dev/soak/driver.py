"""The soak run's driver: the camera, the command source (the kinds of commands and how often
each is sent) and the result sink, as one rclpy node in the soak process."""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections import Counter, OrderedDict, defaultdict, deque
from dataclasses import dataclass

import numpy as np

from dev.soak.scenes import SceneSet

#: GroundingResult status codes -> names (filled once the message module is imported).
_STATUS_NAMES: dict[int, str] = {}


@dataclass(frozen=True)
class Kind:
    """One kind of command the driver sends."""

    name: str
    weight: float
    prompt: str
    topic: str = "grounding_command"  # or "command" (std_msgs/String)
    amodal: bool = False
    frame: str = "newest"  # newest | bad_encoding | short_data | none_near
    expected: str = "OK"  # with the scripted server
    #: A well-formed command: its prompt is an expression naming one object of the scene on
    #: show (``prompt`` is only an example, what the scripted-server test sends).
    well_formed: bool = False
    #: Only the scripted server misbehaves on this prompt's marker; a model would just answer.
    scripted_only: bool = False

    @property
    def stamped(self) -> bool:
        """The command names its frame by ``frame_stamp`` (the others use the newest)."""
        return self.frame != "newest"


def _fault(name: str, weight: float, marker: str, expected: str) -> Kind:
    """A kind only the scripted server misbehaves on (``marker`` in the prompt)."""
    return Kind(name, weight, f"the mug {marker}", expected=expected, scripted_only=True)


KINDS = (
    Kind("ok", 14, "the red mug", well_formed=True),
    Kind("ok_amodal", 4, "the red mug behind the box", amodal=True, well_formed=True),
    Kind("ok_string", 4, "the red mug on the left", topic="command", well_formed=True),
    Kind("empty_command", 1, "   ", topic="command", expected="INVALID_INPUT"),
    Kind("too_long_command", 1, "the mug " * 100, expected="INVALID_INPUT"),
    Kind("control_characters", 1, "the mug\x07\x1b[2J", expected="INVALID_INPUT"),
    Kind("wrong_encoding", 1, "the mug", frame="bad_encoding", expected="INVALID_INPUT"),
    Kind("short_data", 1, "the mug", frame="short_data", expected="INVALID_INPUT"),
    Kind("no_frame_near_stamp", 1, "the mug", frame="none_near", expected="NO_FRAME"),
    _fault("answer_garbage", 1, "#garbage", "MALFORMED_OUTPUT"),
    _fault("answer_truncated", 1, "#truncated", "MALFORMED_OUTPUT"),
    _fault("answer_no_target", 1, "#absent", "NOT_FOUND"),
    _fault("engine_http_500", 1, "#http500", "ENGINE_ERROR"),
    _fault("engine_broken_stream", 1, "#badstream", "ENGINE_ERROR"),
    _fault("engine_drops_connection", 1, "#drop", "ENGINE_UNAVAILABLE"),
    _fault("engine_hangs", 0.5, "#hang", "TIMEOUT"),
)


def scripted(args: argparse.Namespace) -> bool:
    """The engine is the scripted server (whose answers follow the prompts' markers)."""
    return args.backend == "openai" and not args.base_url


@dataclass
class Sent:
    kind: str
    at: float  # time.monotonic()


@dataclass(frozen=True)
class Received:
    """One result as the driver saw it."""

    kind: str
    status: str
    rtt_ms: float  # command published -> result received
    node_ms: float  # the node's own latency.total_ms (command callback -> result)
    #: Command published -> publication of the frame the node used (None: no frame, or a
    #: frame this driver does not know): how stale the picture was that the answer is about.
    frame_age_ms: float | None
    tokens: int = 0  # generated_tokens


class Driver:
    """The camera, the command source and the result sink, as one rclpy node."""

    def __init__(self, args: argparse.Namespace, namespace: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import (
            HistoryPolicy,
            QoSProfile,
            ReliabilityPolicy,
            qos_profile_sensor_data,
        )

        from egm_ros.msg import GroundingCommand, GroundingResult

        _STATUS_NAMES.update(
            {getattr(GroundingResult, n): n[7:] for n in dir(GroundingResult) if n[:7] == "STATUS_"}
        )
        self.args = args
        self.namespace = namespace
        self.context = Context()
        rclpy.init(context=self.context, args=[])
        self.node = Node("egm_soak_driver", context=self.context, namespace=namespace)
        reliable = QoSProfile(
            depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
        )
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        self._Image, self._String, self._Command = Image, String, GroundingCommand
        self.image_pub = self.node.create_publisher(Image, "image_raw", qos_profile_sensor_data)
        self.command_pub = self.node.create_publisher(String, "command", reliable)
        self.gcommand_pub = self.node.create_publisher(
            GroundingCommand, "grounding_command", reliable
        )
        self._subscribe(GroundingResult, reliable)
        self._lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.scenes = SceneSet(args.scenes, args.width, args.height, seed=args.seed)
        self.frames = [self._frame_msg(scene.rgb) for scene in self.scenes.scenes]
        self.frames_per_scene = max(1, round(args.scene_seconds * args.image_hz))
        #: frame stamp (ns) -> time.monotonic() it was published, for the last frames.
        self.published: OrderedDict[int, float] = OrderedDict()
        self.frame_count = 0
        self.bad_count = 0
        self.sent: dict[str, Sent] = {}
        self.sent_by_kind: Counter[str] = Counter()
        self.string_pending: dict[str, deque[Sent]] = defaultdict(deque)
        self.received: list[Received] = []
        self.received_ids: set[str] = set()
        self.expected = {k.name: k.expected for k in KINDS}
        self.unexpected_why: Counter[str] = Counter()
        self.duplicates = 0
        self.unmatched = 0
        self.diagnostics: dict[str, str] = {}
        #: (time.monotonic(), the node's frames_received) from each /diagnostics message.
        self.frames_seen: list[tuple[float, int]] = []
        self.deferred: list = []
        self.sending = False
        #: [commands started, frame count then, commands stopped, frame count then]
        self.window: list[float] = [0.0, 0, 0.0, 0]
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()
        self._image_timer = self.node.create_timer(1.0 / args.image_hz, self._publish_frame)
        self._command_timer = None

    # ------------------------------------------------------------------ set-up
    def _subscribe(self, result_type: type, qos: object) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.node.create_subscription(result_type, "result", self._on_result, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _frame_msg(self, rgb: np.ndarray):
        """An rgb8 Image of ``rgb``, built once and re-stamped at each publication."""
        height, width = rgb.shape[:2]
        msg = self._Image(
            height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3
        )
        msg.data = rgb.tobytes()
        msg.header.frame_id = "soak_camera"
        return msg

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races end the spin
            pass

    def connected(self) -> bool:
        return (
            self.command_pub.get_subscription_count() > 0
            and self.gcommand_pub.get_subscription_count() > 0
            and self.image_pub.get_subscription_count() > 0
            and self.node.count_publishers(f"{self.namespace}/result") > 0
        )

    # ------------------------------------------------------------------ sending
    def _stamp(self, sec: int, nanosec: int = 0):
        from builtin_interfaces.msg import Time

        return Time(sec=sec, nanosec=nanosec)

    def _publish_frame(self) -> None:
        msg = self.frames[self.scenes.index_at(self.frame_count, self.frames_per_scene)]
        ns = 1_000_000_000 + self.frame_count * 1_000_000_000 // int(self.args.image_hz)
        msg.header.stamp = self._stamp(ns // 1_000_000_000, ns % 1_000_000_000)
        self._remember(ns)
        self.image_pub.publish(msg)
        self.frame_count += 1
        # A command about a bad frame goes out one frame period after that frame, so the
        # frame (best effort) is in the node's buffer first; the good frame just sent is newer,
        # so commands about the newest frame never pick the bad one.
        with self._lock:
            deferred, self.deferred = self.deferred, []
        for publish in deferred:
            publish()

    def start_commands(self) -> None:
        self.window = [time.monotonic(), self.frame_count, 0.0, 0]
        self.sending = True
        self._command_timer = self.node.create_timer(1.0 / self.args.command_hz, self._command)

    def stop_commands(self) -> None:
        if self.sending:
            self.window[2:] = [time.monotonic(), self.frame_count]
        self.sending = False
        if self._command_timer is not None:
            self._command_timer.cancel()

    def _remember(self, stamp_ns: int) -> None:
        with self._lock:
            self.published[stamp_ns] = time.monotonic()
            while len(self.published) > 3000:
                self.published.popitem(last=False)

    def sendable(self) -> list[Kind]:
        """The kinds this run sends: the scripted server's faults only to it, and no
        malformed kind with ``--no-faults``."""
        on_script = scripted(self.args)
        return [
            k
            for k in KINDS
            if (self.args.faults or k.well_formed) and (on_script or not k.scripted_only)
        ]

    def _choose(self) -> Kind:
        kinds = self.sendable()
        return self.rng.choices(kinds, weights=[k.weight for k in kinds])[0]

    def _prompt(self, kind: Kind) -> str:
        if not kind.well_formed:
            return kind.prompt
        shown = self.scenes.index_at(max(0, self.frame_count - 1), self.frames_per_scene)
        return self.scenes.command(shown, self.rng)

    def _command(self) -> None:
        if not self.sending:
            return
        kind = self._choose()
        prompt = self._prompt(kind)
        now = time.monotonic()
        if kind.topic == "command":
            with self._lock:
                self.sent_by_kind[kind.name] += 1
                self.string_pending[prompt].append(Sent(kind.name, now))
            self.command_pub.publish(self._String(data=prompt))
            return
        request_id = f"soak-{sum(self.sent_by_kind.values())}"
        msg = self._Command(
            prompt=prompt,
            request_id=request_id,
            mode=self._Command.MODE_AMODAL if kind.amodal else self._Command.MODE_VISIBLE,
        )
        with self._lock:
            self.sent_by_kind[kind.name] += 1
            self.sent[request_id] = Sent(kind.name, now)
        if kind.frame == "newest":
            self.gcommand_pub.publish(msg)
            return
        if kind.frame == "none_near":
            msg.frame_stamp = self._stamp(1)  # long before any frame in the buffer
            self.gcommand_pub.publish(msg)
            return
        self.bad_count += 1
        bad = self._Image(
            height=self.args.height,
            width=self.args.width,
            encoding="rgb8",
            step=self.args.width * 3,
        )
        bad.header.stamp = self._stamp(2_000_000_000 + self.bad_count)  # far from good frames
        bad.header.frame_id = "soak_camera"
        if kind.frame == "bad_encoding":
            bad.encoding = "bayer_weird16"
            bad.data = bytes(16)
        else:  # short_data: the size fields claim a whole frame, the data is a few bytes
            bad.height = 16384
            bad.step = 16384 * 4
            bad.data = bytes(64)
        msg.frame_stamp = bad.header.stamp
        self.image_pub.publish(bad)
        # A good frame at once, so the bad one is the newest frame for as short a time as the
        # transport allows (a starved executor may run two overdue command ticks back to back).
        self._publish_frame()
        with self._lock:
            self.deferred.append(lambda: self.gcommand_pub.publish(msg))

    # ------------------------------------------------------------------ receiving
    def _on_result(self, result) -> None:
        now = time.monotonic()
        status = _STATUS_NAMES.get(result.status, str(result.status))
        with self._lock:
            sent = self.sent.get(result.request_id)
            if sent is None:  # a std_msgs/String command: its id is the node's own
                pending = self.string_pending.get(result.command)
                sent = pending.popleft() if pending else None
            elif result.request_id in self.received_ids:
                self.duplicates += 1
                return
            else:
                self.received_ids.add(result.request_id)
            if sent is None:
                self.unmatched += 1
                return
            if status != self.expected[sent.kind]:
                self.unexpected_why[_why(status, result.status_message)] += 1
            shown = self.published.get(
                result.header.stamp.sec * 1_000_000_000 + result.header.stamp.nanosec
            )
            self.received.append(
                Received(
                    sent.kind,
                    status,
                    (now - sent.at) * 1000.0,
                    result.latency.total_ms,
                    None if shown is None else (sent.at - shown) * 1000.0,
                    result.generated_tokens,
                )
            )

    def _on_diagnostics(self, array) -> None:
        now = time.monotonic()
        for status in array.status:
            if status.name.endswith(f"{self.namespace}/grounding_node"):
                values = {kv.key: kv.value for kv in status.values}
                with self._lock:
                    self.diagnostics = values
                    if "frames_received" in values:
                        self.frames_seen.append((now, int(values["frames_received"])))

    def node_requests(self) -> int:
        """Requests the node has answered, by its latest /diagnostics (-1 before any)."""
        with self._lock:
            return int(self.diagnostics.get("requests", -1))

    @property
    def total_sent(self) -> int:
        with self._lock:
            return sum(self.sent_by_kind.values())

    @property
    def total_received(self) -> int:
        with self._lock:
            return len(self.received)

    def close(self) -> None:
        self.sending = False
        # The executor first: a timer cancelled while its callback is ready makes rclpy report
        # "failed to call timer: timer is canceled" as an exception nobody retrieved.
        self.executor.shutdown(timeout_sec=5)
        self._image_timer.cancel()
        self.stop_commands()
        self.node.destroy_node()
        self.context.try_shutdown()
        self._spinner.join(5)


def _why(status: str, message: str) -> str:
    """The likely reason a result differs from what the scripted server should cause."""
    if status == "BUSY":
        return "queue full (busy)"
    if status == "NO_FRAME":
        return "no usable frame (frames late or dropped under load)"
    if status == "INVALID_INPUT" and ("bayer_weird16" in message or "needs step x" in message):
        return "the newest frame was a malformed one (frame/command race)"
    return f"other: {status}"
