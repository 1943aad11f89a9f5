"""Soak run: the grounding node, as its own process, under a steady load for a set time.

``python -m egm_ros.tools.soak [--seconds 600]`` (``make soak``) starts

* an engine: by default the **scripted** OpenAI-compatible server
  (:mod:`egm_ros.tools.scripted_server`) as a process on loopback. Its answers are scripted,
  not a model's: the run exercises the node, the queue and the engine client (HTTP, streaming,
  retries, parsing), not a model. ``--base-url URL`` uses a running server instead, and
  ``--backend embedded|transformers|vllm --model FOLDER`` an in-process engine;
* the grounding node (``python -m egm_ros.node.main``) in a namespace of its own;
* a driver in this process that publishes camera frames (default 30 Hz) and commands (default
  5 a second), some of them malformed: empty, too long or control-character commands, frames
  with an unknown encoding or data shorter than ``step`` x ``height``, a ``frame_stamp`` with no
  frame near it, and expressions that make the scripted server answer garbage or truncated text,
  fail with HTTP 500, break the stream, drop the connection or hang.

It reports commands sent against results received (every command must get exactly one), the
results by status and by kind of command (with the status the scripted server should cause),
the node's queue high-water mark (from ``/diagnostics``), latency percentiles and the node's
resident memory at the start (after a warm-up) and at the end, as a table and as JSON. The exit
code is 0 when sent == received and the memory stayed within ``--max-rss-growth-mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from egm_ros.tools.scripted_server import ServerProcess

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


KINDS = (
    Kind("ok", 14, "the red mug"),
    Kind("ok_amodal", 4, "the red mug behind the box", amodal=True),
    Kind("ok_string", 4, "the red mug on the left", topic="command"),
    Kind("empty_command", 1, "   ", topic="command", expected="INVALID_INPUT"),
    Kind("too_long_command", 1, "the mug " * 100, expected="INVALID_INPUT"),
    Kind("control_characters", 1, "the mug\x07\x1b[2J", expected="INVALID_INPUT"),
    Kind("wrong_encoding", 1, "the mug", frame="bad_encoding", expected="INVALID_INPUT"),
    Kind("short_data", 1, "the mug", frame="short_data", expected="INVALID_INPUT"),
    Kind("no_frame_near_stamp", 1, "the mug", frame="none_near", expected="NO_FRAME"),
    Kind("answer_garbage", 1, "the mug #garbage", expected="MALFORMED_OUTPUT"),
    Kind("answer_truncated", 1, "the mug #truncated", expected="MALFORMED_OUTPUT"),
    Kind("answer_no_target", 1, "the mug #absent", expected="NOT_FOUND"),
    Kind("engine_http_500", 1, "the mug #http500", expected="ENGINE_ERROR"),
    Kind("engine_broken_stream", 1, "the mug #badstream", expected="ENGINE_ERROR"),
    Kind("engine_drops_connection", 1, "the mug #drop", expected="ENGINE_UNAVAILABLE"),
    Kind("engine_hangs", 0.5, "the mug #hang", expected="TIMEOUT"),
)


@dataclass
class Sent:
    kind: str
    at: float  # time.monotonic()


@dataclass
class Report:
    """What the soak measured; ``ok`` is the verdict (counts and memory only, never times)."""

    seconds: float
    backend: str
    engine: str
    image_hz: float
    command_hz: float
    image_size: str
    frames_published: int
    #: What the driver managed while commands ran (a starved CPU publishes less than asked).
    image_hz_achieved: float
    command_hz_achieved: float
    sent: int
    received: int
    duplicates: int
    unmatched: int
    by_status: dict[str, int]
    errors_by_status: dict[str, int]
    by_kind: dict[str, dict]
    unexpected: int
    #: Why results differ from what the scripted server should cause (load, frame races).
    unexpected_why: dict[str, int]
    queue_high_water: int | None
    queue_size: int
    workers: int
    node_requests: int | None
    latency_ms: dict[str, dict[str, float]]
    rss_mb: dict[str, float]
    #: (seconds since the first command, MB): at most about 60 samples of the node's RSS.
    rss_timeline_mb: list[tuple[float, float]]
    max_rss_growth_mb: float
    ok: bool
    problems: list[str] = field(default_factory=list)


def _rss_kb(pid: int) -> int | None:
    """Resident set size of a process (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    qs = (50, 90, 95, 99)
    arr = np.asarray(values, dtype=float)
    out = {f"p{q}": round(float(v), 1) for q, v in zip(qs, np.percentile(arr, qs), strict=True)}
    out["max"] = round(float(arr.max()), 1)
    out["n"] = len(values)
    return out


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
        self.node.create_subscription(GroundingResult, "result", self._on_result, reliable)
        from diagnostic_msgs.msg import DiagnosticArray

        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.frames = self._make_frames(args.width, args.height)
        self.frame_count = 0
        self.bad_count = 0
        self.sent: dict[str, Sent] = {}
        self.sent_by_kind: Counter[str] = Counter()
        self.string_pending: dict[str, deque[Sent]] = defaultdict(deque)
        self.received: list[tuple[str, str, float, float]] = []  # kind, status, rtt, node ms
        self.received_ids: set[str] = set()
        self.expected = {k.name: k.expected for k in KINDS}
        self.unexpected_why: Counter[str] = Counter()
        self.duplicates = 0
        self.unmatched = 0
        self.diagnostics: dict[str, str] = {}
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
    def _make_frames(self, width: int, height: int) -> list:
        """A few rgb8 scenes (a red block on a grey table), built once and re-stamped."""
        frames = []
        for k in range(4):
            rgb = np.full((height, width, 3), 90 + 10 * k, np.uint8)
            x0, y0 = width // 5 + 7 * k, height // 3
            rgb[y0 : y0 + height // 4, x0 : x0 + width // 6] = (200, 30, 30)
            msg = self._Image(
                height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3
            )
            msg.data = rgb.tobytes()
            msg.header.frame_id = "soak_camera"
            frames.append(msg)
        return frames

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
        msg = self.frames[self.frame_count % len(self.frames)]
        ns = 1_000_000_000 + self.frame_count * 1_000_000_000 // int(self.args.image_hz)
        msg.header.stamp = self._stamp(ns // 1_000_000_000, ns % 1_000_000_000)
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

    def _choose(self) -> Kind:
        kinds = [k for k in KINDS if self.args.faults or k.expected in ("OK",)]
        return self.rng.choices(kinds, weights=[k.weight for k in kinds])[0]

    def _command(self) -> None:
        if not self.sending:
            return
        kind = self._choose()
        now = time.monotonic()
        if kind.topic == "command":
            with self._lock:
                self.sent_by_kind[kind.name] += 1
                self.string_pending[kind.prompt].append(Sent(kind.name, now))
            self.command_pub.publish(self._String(data=kind.prompt))
            return
        request_id = f"soak-{sum(self.sent_by_kind.values())}"
        msg = self._Command(
            prompt=kind.prompt,
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
            self.received.append(
                (sent.kind, status, (now - sent.at) * 1000.0, result.latency.total_ms)
            )

    def _on_diagnostics(self, array) -> None:
        for status in array.status:
            if status.name.endswith(f"{self.namespace}/grounding_node"):
                with self._lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}

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
        self._image_timer.cancel()
        self.stop_commands()
        self.executor.shutdown(timeout_sec=5)
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


def _node_command(args: argparse.Namespace, namespace: str, base_url: str) -> list[str]:
    params = {
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
    command = [sys.executable, "-m", "egm_ros.node.main", "--ros-args", "-r", f"__ns:={namespace}"]
    for name, value in params.items():
        command += ["-p", f"{name}:={value}"]
    return command


def _engine_failure(log: Path) -> str:
    """The node's "cannot load the engine" line (it stays unconfigured and never subscribes)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    line = next((ln for ln in text.splitlines() if "cannot load the engine" in ln), "")
    return line.split("cannot load the engine: ", 1)[-1]


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
    log_dir.mkdir(parents=True, exist_ok=True)
    node_log = open(log_dir / "node.log", "w", encoding="utf-8")  # closed in the finally below
    node = subprocess.Popen(
        _node_command(args, namespace, base_url),
        stdout=node_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    driver = None
    rss: list[tuple[float, int]] = []
    try:
        driver = Driver(args, namespace)
        deadline = time.monotonic() + args.startup_timeout
        while not driver.connected():
            if node.poll() is not None:
                raise RuntimeError(f"the grounding node exited; see {log_dir / 'node.log'}")
            failed = _engine_failure(log_dir / "node.log")
            if failed:
                raise RuntimeError(f"the grounding node has no engine: {failed}")
            if time.monotonic() > deadline:
                raise RuntimeError("the grounding node did not come up")
            time.sleep(0.1)
        time.sleep(1.0)  # a few frames into the buffer
        start = time.monotonic()
        driver.start_commands()
        warmup = args.warmup if args.warmup is not None else min(30.0, args.seconds / 5)
        next_report = start + args.progress
        while (now := time.monotonic()) < start + args.seconds:
            kb = _rss_kb(node.pid)
            if kb is not None:
                rss.append((now - start, kb))
            if node.poll() is not None:
                raise RuntimeError(f"the grounding node died; see {log_dir / 'node.log'}")
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
        kb = _rss_kb(node.pid)
        if kb is not None:
            rss.append((time.monotonic() - start, kb))
        return _report(args, driver, engine, rss, warmup)
    finally:
        if driver is not None:
            driver.close()
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(20)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait(10)
        node_log.close()
        if server is not None:
            server.kill()


def _report(
    args: argparse.Namespace,
    driver: Driver,
    engine: str,
    rss: list[tuple[float, int]],
    warmup: float,
) -> Report:
    with driver._lock:
        received = list(driver.received)
        sent_by_kind = dict(driver.sent_by_kind)
        diagnostics = dict(driver.diagnostics)
        duplicates, unmatched = driver.duplicates, driver.unmatched
    by_status = Counter(status for _, status, _, _ in received)
    errors = {s: n for s, n in sorted(by_status.items()) if s not in ("OK", "NOT_FOUND")}
    expected = {k.name: k.expected for k in KINDS}
    scripted = args.backend == "openai" and not args.base_url
    by_kind: dict[str, dict] = {}
    unexpected = 0
    for kind in KINDS:
        if kind.name not in sent_by_kind:
            continue
        statuses = Counter(s for k, s, _, _ in received if k == kind.name)
        wrong = sum(n for s, n in statuses.items() if s != expected[kind.name]) if scripted else 0
        unexpected += wrong
        by_kind[kind.name] = {
            "sent": sent_by_kind[kind.name],
            "received": sum(statuses.values()),
            "expected": expected[kind.name] if scripted else "-",
            "statuses": dict(sorted(statuses.items())),
        }
    ok_rtt = [rtt for _, s, rtt, _ in received if s == "OK"]
    all_rtt = [rtt for _, _, rtt, _ in received]
    node_ok = [ms for _, s, _, ms in received if s == "OK"]
    # The start sample is the first after the warm-up (imports, caches and the frame buffer
    # filling up are start-up, not growth); a run shorter than its warm-up uses its first.
    after = [kb for t, kb in rss if t >= warmup] or [kb for _, kb in rss] or [0]
    start_kb, end_kb = after[0], after[-1]
    rss_mb = {
        "start": round(start_kb / 1024, 1),
        "end": round(end_kb / 1024, 1),
        "max": round(max(after) / 1024, 1),
        "growth": round((end_kb - start_kb) / 1024, 1),
        "first_sample": round(rss[0][1] / 1024, 1) if rss else 0.0,
    }
    sent, got = sum(sent_by_kind.values()), len(received)
    t0, f0, t1, f1 = driver.window
    span = max(t1 - t0, 1e-9)
    problems = []
    if sent != got:
        problems.append(f"sent {sent} commands but received {got} results")
    if duplicates:
        problems.append(f"{duplicates} duplicate results")
    if unmatched:
        problems.append(f"{unmatched} results match no command")
    if rss_mb["growth"] > args.max_rss_growth_mb:
        problems.append(f"node RSS grew {rss_mb['growth']} MB (limit {args.max_rss_growth_mb} MB)")
    hwm = diagnostics.get("queue_high_water")
    requests = diagnostics.get("requests")
    return Report(
        seconds=args.seconds,
        backend=args.backend,
        engine=engine,
        image_hz=args.image_hz,
        command_hz=args.command_hz,
        image_size=f"{args.width}x{args.height} rgb8",
        frames_published=driver.frame_count,
        image_hz_achieved=round((f1 - f0) / span, 1),
        command_hz_achieved=round(sent / span, 2),
        sent=sent,
        received=got,
        duplicates=duplicates,
        unmatched=unmatched,
        by_status=dict(sorted(by_status.items())),
        errors_by_status=errors,
        by_kind=by_kind,
        unexpected=unexpected,
        unexpected_why=dict(driver.unexpected_why.most_common()) if scripted else {},
        queue_high_water=int(hwm) if hwm is not None else None,
        queue_size=args.queue_size,
        workers=args.workers,
        node_requests=int(requests) if requests is not None else None,
        latency_ms={
            "round_trip_ok": _percentiles(ok_rtt),
            "round_trip_all": _percentiles(all_rtt),
            "node_total_ok": _percentiles(node_ok),
        },
        rss_mb=rss_mb,
        rss_timeline_mb=[
            (round(t, 1), round(kb / 1024, 1)) for t, kb in rss[:: max(1, len(rss) // 60)]
        ],
        max_rss_growth_mb=args.max_rss_growth_mb,
        ok=not problems,
        problems=problems,
    )


def format_report(report: Report) -> str:
    """The report as plain-text tables."""
    lines = [
        f"egm_ros soak: {report.seconds:g} s, {report.engine}",
        f"  frames {report.image_size}: {report.image_hz:g} Hz asked, "
        f"{report.image_hz_achieved:g} Hz achieved ({report.frames_published} published); "
        f"commands: {report.command_hz:g}/s asked, {report.command_hz_achieved:g}/s achieved",
        "",
        f"  commands sent      {report.sent}",
        f"  results received   {report.received}"
        + ("   (equal)" if report.sent == report.received else "   (NOT EQUAL)"),
        f"  duplicates / unmatched results  {report.duplicates} / {report.unmatched}",
        f"  queue high-water   {report.queue_high_water} (queue_size {report.queue_size} + "
        f"workers {report.workers})",
        f"  node RSS (MB)      start {report.rss_mb['start']} (after warm-up; first sample "
        f"{report.rss_mb['first_sample']})  end {report.rss_mb['end']}  max "
        f"{report.rss_mb['max']}  growth {report.rss_mb['growth']:+}",
        "",
        "  results by status:",
    ]
    lines += [f"    {s:<20} {n:>7}" for s, n in report.by_status.items()]
    lines += ["", f"  {'kind':<26}{'sent':>6}{'recv':>6}  {'expected':<19} statuses"]
    for name, row in report.by_kind.items():
        statuses = ", ".join(f"{s} {n}" for s, n in row["statuses"].items())
        lines.append(
            f"  {name:<26}{row['sent']:>6}{row['received']:>6}  {row['expected']:<19} {statuses}"
        )
    lines += [
        "",
        f"  {'latency (ms)':<26}{'p50':>8}{'p90':>8}{'p95':>8}{'p99':>8}{'max':>8}{'n':>7}",
    ]
    for name, p in report.latency_ms.items():
        if p:
            lines.append(
                f"  {name:<26}{p['p50']:>8}{p['p90']:>8}{p['p95']:>8}{p['p99']:>8}{p['max']:>8}"
                f"{p['n']:>7}"
            )
    lines += [
        "",
        f"  results with another status than the scripted server should cause: {report.unexpected}",
        *(f"    {n:>6}  {why}" for why, n in report.unexpected_why.items()),
        "  verdict: " + ("PASS" if report.ok else "FAIL: " + "; ".join(report.problems)),
    ]
    return "\n".join(lines)


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
        "--backend",
        choices=("openai", "embedded", "transformers", "vllm", "tensorrt_llm"),
        default="openai",
        help="openai (default): the scripted server, or --base-url",
    )
    parser.add_argument("--base-url", default="", help="openai: a running server to use instead")
    parser.add_argument("--model", default="", help="model folder or name")
    parser.add_argument("--family", default="", help="model_family ('' = detect)")
    parser.add_argument("--request-timeout", type=float, default=5.0)
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
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--progress", type=float, default=60.0, help="seconds; 0 = quiet")
    parser.add_argument("--json", default="", help="write the report as JSON here")
    parser.add_argument("--out", default="", help="folder for node.log (default: a temp dir)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
