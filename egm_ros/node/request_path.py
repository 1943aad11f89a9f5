"""The one path of a command, whichever way it came in (topic ``command``, topic
``grounding_command``, ``ground`` action goal): intake (mode decoded, id given), frame choice,
the bounded queue, the grounder in a worker thread, and exactly one result, handed to the
caller's ``reply``.

No executor and no node: the ROS node feeds it frames and commands from its callbacks and
publishes what ``reply`` gets, and tests drive it directly. Frames stay messages until a command
uses one (decoded in the worker), so a 30 Hz camera costs a buffer append per frame.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from std_msgs.msg import Header

from egm_ros.core.compressed import DecodedImage
from egm_ros.core.grounder import Grounder
from egm_ros.core.types import GroundingError, GroundingOutcome, Latency, Mode, Status
from egm_ros.msg import GroundingResult
from egm_ros.node.conversions import (
    frame_input,
    mode_from_msg,
    outcome_to_msg,
    stamp_to_ns,
)
from egm_ros.node.depth_input import DepthInput
from egm_ros.node.frame_buffer import Frame, FrameBuffer, FrameChoiceError
from egm_ros.node.stats import RequestStats
from egm_ros.node.work_queue import WorkQueue

Reply = Callable[[GroundingResult], None]
Progress = Callable[[int, str], None]
#: Called after each reply with the decoded frame (None when there was none, or when it was not
#: decoded because its bytes went to the engine as they are and ``frame_wanted`` said no; a JPEG
#: may be a reduced decode, its boxes are in ``source_size`` pixels), the outcome and the
#: result's header: the debug overlay's hook.
ResultHook = Callable[[DecodedImage | None, GroundingOutcome, Header], None]


@dataclass(frozen=True)
class PathSettings:
    """The run-time parameters the path reads (the node replaces them when they change)."""

    mode: Mode = Mode.VISIBLE
    request_timeout: float = 60.0
    frame_stamp_tolerance: float = 0.1
    depth_stamp_tolerance: float = 0.05
    publish_reasoning: bool = True
    queue_size: int = 8


#: How long a command without a stamp that found only stale frames waits for the next one.
STALE_FRAME_GRACE_S = 1.0


@dataclass
class Request:
    request_id: str
    prompt: str
    mode: Mode
    received: float
    reply: Reply
    frame: Frame | None = None
    frame_error: str = ""
    stale: bool = False  # no stamp, no own image, and only stale frames when it came
    depth_frame: Frame | None = None  # use_depth: the depth frame matched at intake, if any
    on_progress: Progress | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


class RequestPath:
    """Thread-safe: callbacks of a multi-threaded executor and the workers use it at once."""

    def __init__(
        self,
        name: str,
        frames: FrameBuffer,
        settings: PathSettings,
        *,
        now: Callable[[], Any],
        warn: Callable[[str], None],
        on_result: ResultHook | None = None,
        on_reply: Reply | None = None,
        frame_wanted: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.frames = frames
        self._settings = settings
        self.stats = RequestStats()
        self.grounder: Grounder | None = None
        self.queue: WorkQueue[Request] | None = None
        self._now = now  # the stamp of results without a frame (builtin_interfaces/Time)
        self._warn = warn
        self._on_result = on_result
        self._on_reply = on_reply  # every result after its reply (the vision_msgs outputs)
        #: The depth input when ``use_depth`` is on: answered commands get 3D boxes.
        self.depth: DepthInput | None = None
        #: True while ``on_result`` needs the decoded frame (the debug overlay has a reader).
        self._frame_wanted = frame_wanted
        self._ids = itertools.count(1)
        self._frame_id = ""

    @property
    def settings(self) -> PathSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: PathSettings) -> None:
        """New run-time settings; a new ``queue_size`` resizes the running queue."""
        self._settings = settings
        if self.queue is not None:
            self.queue.resize(settings.queue_size)

    # ----------------------------------------------------------------- serving
    def start(self, grounder: Grounder, workers: int) -> None:
        self.grounder = grounder
        self.queue = WorkQueue(self._serve, maxsize=self.settings.queue_size, workers=workers)

    def stop(self) -> None:
        """Serve what is queued (every command gets its result), then let go of the grounder."""
        if self.queue is not None:
            self.queue.close(timeout=self.settings.request_timeout)
            self.queue = None
        self.grounder = None

    @property
    def model_name(self) -> str:
        grounder = self.grounder
        return grounder.engine.model_name if grounder is not None else ""

    # ----------------------------------------------------------------- intake
    def add_frame(self, msg: Any) -> None:
        """A camera frame (Image or CompressedImage), kept as it arrived."""
        self._frame_id = msg.header.frame_id
        self.frames.add(stamp_to_ns(msg.header.stamp), msg)

    def submit(
        self,
        prompt: str,
        reply: Reply,
        *,
        mode_code: int = 0,
        request_id: str = "",
        stamp_ns: int = 0,
        image: Any = None,
        on_progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Take a command: ``mode_code`` is a ``GroundingCommand.MODE_*`` (0: the ``mode``
        parameter); ``stamp_ns`` picks the buffered frame closest to it (0: the newest);
        ``image`` (a goal's own image) is used instead of the buffer. ``reply`` is called once,
        now or from a worker."""
        request = Request(
            request_id=request_id or f"{self.name}-{next(self._ids)}",
            prompt=prompt,
            mode=self.settings.mode,
            received=time.monotonic(),
            reply=reply,
            on_progress=on_progress,
        )
        if cancel is not None:
            request.cancel = cancel
        try:
            request.mode = mode_from_msg(mode_code, self.settings.mode)
        except ValueError as err:
            self._reply_now(request, Status.INVALID_INPUT, str(err))
            return
        request.frame, request.frame_error = self._choose_frame(request.received, stamp_ns, image)
        # Only stale frames (the camera sent some, none lately): the next one may still come.
        own_image = image is not None and image.width and image.height
        request.stale = not (request.frame or stamp_ns or own_image) and self.frames.received > 0
        depth = self.depth
        if depth is not None and request.frame is not None:
            # Matched now, while the frame is buffered (a command may wait longer than the
            # buffer keeps frames); the lift tries again if it has not arrived yet.
            tolerance = self.settings.depth_stamp_tolerance
            request.depth_frame = depth.match(request.frame.stamp_ns, tolerance)
        queue = self.queue
        if queue is None or not queue.submit(request):
            waiting = queue.depth if queue is not None else 0
            self._reply_now(
                request, Status.BUSY, f"request queue full ({waiting} waiting); try again"
            )

    def _choose_frame(self, received: float, stamp_ns: int, image: Any) -> tuple[Frame | None, str]:
        if image is not None and image.width > 0 and image.height > 0:
            return Frame(stamp_to_ns(image.header.stamp), received, image), ""
        try:
            if stamp_ns:
                return self.frames.closest(stamp_ns, self.settings.frame_stamp_tolerance), ""
            return self.frames.latest(), ""
        except FrameChoiceError as err:
            return None, str(err)

    # ----------------------------------------------------------------- work
    def _serve(self, request: Request) -> None:
        """In a worker thread: check what can fail without the engine, decode, ground, reply."""
        if request.stale:  # before the clock starts: the grace counts as waiting
            request.frame = self._next_frame(request)
        started = time.monotonic()
        grounder = self.grounder
        # request_timeout bounds the whole answer, queueing included: a command that waited
        # out its budget behind slow requests is answered now instead of late.
        timeout = self.settings.request_timeout
        waited = started - request.received
        if request.cancel.is_set():
            self._reply_now(request, Status.CANCELLED, "cancelled before it started")
        elif request.frame is None:
            self._reply_now(request, Status.NO_FRAME, request.frame_error or "no camera frame")
        elif grounder is None:
            self._reply_now(request, Status.ENGINE_UNAVAILABLE, "the engine is not configured")
        elif waited >= timeout:
            message = f"waited {waited:.1f} s in the queue (request_timeout {timeout:g} s)"
            self._reply_now(request, Status.TIMEOUT, message)
        else:
            self._ground(grounder, request, started, timeout - waited)

    def _next_frame(self, request: Request) -> Frame | None:
        """The buffer was stale when the command came: wait up to ``STALE_FRAME_GRACE_S`` for
        the camera's next frame. A stream (or its transport, under load) can pause for seconds
        while commands still arrive; "now" is the next frame, not an error (issue 21)."""
        deadline = time.monotonic() + STALE_FRAME_GRACE_S
        while not request.cancel.is_set() and time.monotonic() < deadline:
            try:
                return self.frames.latest()
            except FrameChoiceError:
                time.sleep(0.02)
        return None

    def _ground(self, grounder: Grounder, request: Request, started: float, budget: float) -> None:
        assert request.frame is not None
        try:
            # Decoded only when something needs the pixels; a JPEG larger than the grounder
            # needs is decoded at a reduced scale; a JPEG within it goes out unchanged.
            wanted = self._frame_wanted is not None and self._frame_wanted()
            frame = frame_input(request.frame.message, grounder, wanted)
        except GroundingError as err:
            self._reply_now(request, err.status, err.message)
            return
        decoded = frame.decoded
        outcome = grounder.ground(
            decoded.rgb if decoded is not None else None,
            request.prompt,
            request.mode,
            on_progress=request.on_progress,
            cancel=request.cancel,
            received_at=request.received,
            started_at=started,
            timeout=budget,
            encoded=frame.encoded,
            source_size=frame.source_size,
        )
        depth = self.depth
        if depth is not None:  # use_depth: 3D boxes from the depth frame matched to this one
            lifting = time.monotonic()
            header = request.frame.message.header
            tolerance = self.settings.depth_stamp_tolerance
            depth.lift(outcome, header, frame.source_size, tolerance, request.depth_frame)
            outcome.latency.total_ms += (time.monotonic() - lifting) * 1000.0
        self._finish(request, outcome, decoded, frame.source_size)

    def _reply_now(self, request: Request, status: Status, message: str) -> None:
        outcome = GroundingOutcome(
            status=status, message=message, prompt=request.prompt, mode=request.mode
        )
        outcome.latency = Latency(total_ms=(time.monotonic() - request.received) * 1000.0)
        self._finish(request, outcome, None)

    def _finish(
        self,
        request: Request,
        outcome: GroundingOutcome,
        decoded: DecodedImage | None,
        source_size: tuple[int, int] | None = None,
    ) -> None:
        """The one place a result is made and replied."""
        message = request.frame.message if request.frame is not None else None
        if message is not None:
            header = message.header
            size = source_size or _message_size(message)
        else:
            header = Header(stamp=self._now(), frame_id=self._frame_id)
            size = (0, 0)
        outcome.model = outcome.model or self.model_name
        result = outcome_to_msg(
            outcome, header, request.request_id, size, self.settings.publish_reasoning
        )
        self.stats.record(outcome.status, outcome.latency.total_ms, outcome.message)
        if outcome.status.is_error:
            self._warn(
                f"request {request.request_id} ({request.prompt[:60]!r}): "
                f"{outcome.status.value}: {outcome.message}"
            )
        request.reply(result)
        if self._on_reply is not None:
            self._on_reply(result)
        if self._on_result is not None:
            self._on_result(decoded, outcome, header)


def _message_size(message: Any) -> tuple[int, int]:
    return (int(getattr(message, "width", 0)), int(getattr(message, "height", 0)))
