"""The grounding node: a thin ROS 2 adapter over :class:`egm_ros.core.grounder.Grounder`.

Lifecycle: configure loads the engine, activate subscribes and serves the ``ground`` action,
deactivate and cleanup undo that. With ``autostart`` (the default) it configures and activates
itself, so it works with or without a lifecycle manager.

Every command gets exactly one result: on ``result`` for topic commands, as the action result
for goals. Inference runs in worker threads behind a bounded queue; when it is full the command
is answered at once with status busy. Frames are buffered as messages and decoded only when a
command uses them.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from egm_ros.action import Ground
from egm_ros.core.engine import Engine, SamplingParams
from egm_ros.core.families import Family
from egm_ros.core.grounder import Grounder, GrounderConfig
from egm_ros.core.prompts import PromptStyle
from egm_ros.core.types import GroundingError, GroundingOutcome, Latency, Mode, Status
from egm_ros.engines import BACKENDS, EngineSettings, create_engine
from egm_ros.msg import GroundingCommand, GroundingResult
from egm_ros.node.conversions import (
    image_msg_bytes,
    image_msg_to_rgb,
    mode_from_msg,
    outcome_to_msg,
    rgb_to_image_msg,
    stamp_to_ns,
)
from egm_ros.node.frame_buffer import Frame, FrameBuffer, FrameChoiceError
from egm_ros.node.parameters import PARAMETERS
from egm_ros.node.stats import RequestStats
from egm_ros.node.work_queue import WorkQueue

#: Feedback is throttled to this period so a fast engine does not flood the action.
FEEDBACK_PERIOD_S = 0.1
#: Parameters that name the engine; fixed once configured (only the params file sets them).
ENGINE_PARAMETERS = ("backend", "model", "model_family", "base_url", "prompt_style")
#: Commands are reliable and kept 100 deep: while a busy CPU starves the executor (an in-process
#: engine generating), a depth of 10 let DDS overwrite commands that never got a result.
COMMAND_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class _Request:
    request_id: str
    prompt: str
    mode: Mode
    frame: Frame | None
    received: float
    reply: Callable[[GroundingResult], None]
    frame_error: str = ""
    on_progress: Callable[[int, str], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


def _descriptor(
    description: str,
    *,
    read_only: bool = False,
    int_range=None,
    float_range=None,
    choices: tuple[str, ...] = (),
) -> ParameterDescriptor:
    if choices:
        description = f"{description} One of: {', '.join(choices)}."
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if int_range:
        desc.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    if float_range:
        desc.floating_point_range = [
            FloatingPointRange(from_value=float(float_range[0]), to_value=float(float_range[1]))
        ]
    return desc


class GroundingNode(LifecycleNode):
    def __init__(self, node_name: str = "grounding_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, desc) in PARAMETERS.items():
            self.declare_parameter(name, default, _descriptor(**desc))
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._group = ReentrantCallbackGroup()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.engine: Engine | None = None
        self.grounder: Grounder | None = None
        self.queue: WorkQueue[_Request] | None = None
        self.stats = RequestStats()
        self.frames = FrameBuffer(self._param("frame_buffer_seconds"))
        self.camera_info: CameraInfo | None = None
        self._frame_id = ""
        self._subscriptions_active: list = []
        self._action_server: ActionServer | None = None
        self._result_pub = self._debug_pub = self._diag_pub = None
        self._diag_timer = None
        self.engine_state = "unconfigured"
        if self._param("autostart"):
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # ----------------------------------------------------------------- parameters
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == "backend" and p.value not in BACKENDS:
                return SetParametersResult(
                    successful=False, reason=f"backend must be in {BACKENDS}"
                )
            if p.name == "mode" and p.value not in ("visible", "amodal"):
                return SetParametersResult(successful=False, reason="mode is visible or amodal")
            if p.name == "model_family" and p.value and p.value not in [f.value for f in Family]:
                return SetParametersResult(successful=False, reason="unknown model_family")
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        if self.grounder is not None:
            self.grounder.config = self._grounder_config()
        self.frames.seconds = self._param("frame_buffer_seconds")

    def _grounder_config(self) -> GrounderConfig:
        family = self._param("model_family")
        return GrounderConfig(
            family=Family(family) if family else None,
            prompt_style=PromptStyle(self._param("prompt_style")),
            mode=Mode.parse(self._param("mode")),
            max_pixels=self._param("max_pixels"),
            sampling=SamplingParams(
                max_new_tokens=self._param("max_new_tokens"), temperature=self._param("temperature")
            ),
            timeout=self._param("request_timeout"),
        )

    # ----------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings = EngineSettings(
            backend=self._param("backend"),
            model=self._param("model"),
            base_url=self._param("base_url"),
            timeout=self._param("request_timeout"),
            max_pixels=self._param("max_pixels") or None,
            api_key_file=os.environ.get("EGM_API_KEY_FILE"),
            verify_tls=self._param("verify_tls"),
        )
        self.get_logger().info(f"loading engine {settings.backend!r} model {settings.model!r}")
        try:
            self.engine = create_engine(settings)
        except GroundingError as err:
            self.engine_state = f"failed: {err.message}"
            self.get_logger().error(f"cannot load the engine: {err.status.value}: {err.message}")
            return TransitionCallbackReturn.FAILURE
        self.grounder = Grounder(self.engine, self._grounder_config())
        self.queue = WorkQueue(
            self._serve, maxsize=self._param("queue_size"), workers=self._param("workers")
        )
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._result_pub = self.create_publisher(GroundingResult, "result", reliable)
        self._debug_pub = self.create_publisher(Image, "debug_image", 2)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics, self._group)
        self.engine_state = "ready"
        self.get_logger().info(f"engine ready: {self.engine.backend} {self.engine.model_name}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._param("compressed_input"):
            image_sub = self.create_subscription(
                CompressedImage,
                "image_raw/compressed",
                self._on_image,
                qos_profile_sensor_data,
                callback_group=self._group,
            )
        else:
            image_sub = self.create_subscription(
                Image,
                "image_raw",
                self._on_image,
                qos_profile_sensor_data,
                callback_group=self._group,
            )
        self._subscriptions_active = [
            image_sub,
            self.create_subscription(
                CameraInfo,
                "camera_info",
                self._on_camera_info,
                qos_profile_sensor_data,
                callback_group=self._group,
            ),
            self.create_subscription(
                String, "command", self._on_command, COMMAND_QOS, callback_group=self._group
            ),
            self.create_subscription(
                GroundingCommand,
                "grounding_command",
                self._on_grounding_command,
                COMMAND_QOS,
                callback_group=self._group,
            ),
        ]
        self._action_server = ActionServer(
            self,
            Ground,
            "ground",
            execute_callback=self._execute_goal,
            goal_callback=lambda _goal: GoalResponse.ACCEPT,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=self._group,
        )
        self.engine_state = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self.engine_state = "ready"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_inputs(self) -> None:
        for sub in self._subscriptions_active:
            self.destroy_subscription(sub)
        self._subscriptions_active = []
        if self._action_server is not None:
            self._action_server.destroy()
            self._action_server = None

    def _release(self) -> None:
        """Serve what is queued (every command gets its result), then free the engine."""
        if self.queue is not None:
            self.queue.close(timeout=self._param("request_timeout"))
            self.queue = None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for pub in (self._result_pub, self._debug_pub, self._diag_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._result_pub = self._debug_pub = self._diag_pub = None
        if self.engine is not None:
            self.engine.close()
        self.engine = self.grounder = None
        self.engine_state = "unconfigured"

    # ----------------------------------------------------------------- inputs
    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._frame_id = msg.header.frame_id
        self.frames.add(stamp_to_ns(msg.header.stamp), msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _on_command(self, msg: String) -> None:
        self._accept(msg.data, None, "", None)

    def _on_grounding_command(self, msg: GroundingCommand) -> None:
        try:
            mode = mode_from_msg(msg.mode, Mode.parse(self._param("mode")))
        except ValueError as err:
            self._reply_now(
                self._new_request(msg.prompt, Mode.VISIBLE, msg.request_id),
                Status.INVALID_INPUT,
                str(err),
            )
            return
        stamp = stamp_to_ns(msg.frame_stamp)
        self._accept(msg.prompt, mode, msg.request_id, stamp or None)

    def _new_request(
        self,
        prompt: str,
        mode: Mode,
        request_id: str,
        reply: Callable[[GroundingResult], None] | None = None,
    ) -> _Request:
        return _Request(
            request_id=request_id or f"{self.get_name()}-{next(self._ids)}",
            prompt=prompt,
            mode=mode,
            frame=None,
            received=time.monotonic(),
            reply=reply or self._publish_result,
        )

    def _accept(
        self, prompt: str, mode: Mode | None, request_id: str, stamp_ns: int | None
    ) -> None:
        request = self._new_request(prompt, mode or Mode.parse(self._param("mode")), request_id)
        try:
            if stamp_ns is None:
                request.frame = self.frames.latest()
            else:
                request.frame = self.frames.closest(stamp_ns, self._param("frame_stamp_tolerance"))
        except FrameChoiceError as err:
            request.frame_error = str(err)
        self._submit(request)

    def _submit(self, request: _Request) -> None:
        if self.queue is None or not self.queue.submit(request):
            depth = self._param("queue_size")
            self._reply_now(
                request, Status.BUSY, f"request queue full ({depth} waiting); try again"
            )

    def _reply_now(self, request: _Request, status: Status, message: str) -> None:
        outcome = GroundingOutcome(
            status=status, message=message, prompt=request.prompt, mode=request.mode
        )
        outcome.latency = Latency(total_ms=(time.monotonic() - request.received) * 1000.0)
        self._finish(request, outcome, None)

    # ----------------------------------------------------------------- work
    def _serve(self, request: _Request) -> None:
        """Runs in a worker thread: decode the frame, ground, reply."""
        started = time.monotonic()
        if request.cancel.is_set():
            self._reply_now(request, Status.CANCELLED, "cancelled before it started")
            return
        if request.frame is None:
            self._reply_now(request, Status.NO_FRAME, request.frame_error or "no camera frame")
            return
        grounder = self.grounder
        if grounder is None:
            self._reply_now(request, Status.ENGINE_UNAVAILABLE, "the engine is not configured")
            return
        # request_timeout bounds the whole answer, queueing included: a command that waited
        # out its budget behind slow requests is answered now instead of late.
        timeout = self._param("request_timeout")
        budget = timeout - (started - request.received)
        if budget <= 0:
            waited = started - request.received
            self._reply_now(
                request,
                Status.TIMEOUT,
                f"waited {waited:.1f} s in the queue (request_timeout {timeout:g} s)",
            )
            return
        try:
            rgb = image_msg_to_rgb(request.frame.message)
            encoded = image_msg_bytes(request.frame.message)  # a JPEG goes out unchanged
        except GroundingError as err:
            self._reply_now(request, err.status, err.message)
            return
        outcome = grounder.ground(
            rgb,
            request.prompt,
            request.mode,
            on_progress=request.on_progress,
            cancel=request.cancel,
            received_at=request.received,
            started_at=started,
            timeout=budget,
            encoded=encoded,
        )
        self._finish(request, outcome, rgb)

    def _finish(self, request: _Request, outcome: GroundingOutcome, rgb) -> None:
        message = request.frame.message if request.frame is not None else None
        if message is not None:
            header = message.header
            size = (rgb.shape[1], rgb.shape[0]) if rgb is not None else _message_size(message)
        else:
            header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._frame_id)
            size = (0, 0)
        if not outcome.model and self.engine is not None:
            outcome.model = self.engine.model_name
        result = outcome_to_msg(
            outcome, header, request.request_id, size, self._param("publish_reasoning")
        )
        self.stats.record(outcome.status, outcome.latency.total_ms)
        if outcome.status.is_error:
            self.get_logger().warning(
                f"request {request.request_id} ({request.prompt[:60]!r}): "
                f"{outcome.status.value}: {outcome.message}"
            )
        request.reply(result)
        if (
            rgb is not None
            and self._debug_pub is not None
            and self._debug_pub.get_subscription_count() > 0
        ):
            self._publish_debug(rgb, outcome, header)

    def _publish_result(self, result: GroundingResult) -> None:
        pub = self._result_pub
        if pub is not None:
            pub.publish(result)

    def _publish_debug(self, rgb, outcome: GroundingOutcome, header: Header) -> None:
        from egm_ros.core.annotate import draw_result

        drawn = draw_result(
            rgb, outcome.objects, caption=outcome.prompt, status_text=outcome.status.value
        )
        pub = self._debug_pub
        if pub is not None:
            pub.publish(rgb_to_image_msg(drawn, header))

    # ----------------------------------------------------------------- action
    def _execute_goal(self, goal_handle) -> Ground.Result:
        goal = goal_handle.request
        done = threading.Event()
        holder: list[GroundingResult] = []

        def reply(result: GroundingResult) -> None:
            holder.append(result)
            done.set()

        try:
            mode = mode_from_msg(goal.mode, Mode.parse(self._param("mode")))
        except ValueError:
            mode = Mode.VISIBLE
        request = self._new_request(goal.prompt, mode, goal.request_id, reply)
        request.on_progress = self._feedback_publisher(goal_handle, request.received)
        if goal.image.width > 0 and goal.image.height > 0:
            request.frame = Frame(
                stamp_to_ns(goal.image.header.stamp), request.received, goal.image
            )
        else:
            try:
                request.frame = self.frames.latest()
            except FrameChoiceError as err:
                request.frame_error = str(err)
        if goal.mode not in (0, 1, 2):
            self._reply_now(request, Status.INVALID_INPUT, f"unknown mode {goal.mode}")
        else:
            self._submit(request)
        while not done.wait(0.05):
            if goal_handle.is_cancel_requested:
                request.cancel.set()
        result = holder[0]
        if result.status == GroundingResult.STATUS_CANCELLED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif result.status in (GroundingResult.STATUS_OK, GroundingResult.STATUS_NOT_FOUND):
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return Ground.Result(result=result)

    def _feedback_publisher(self, goal_handle, started: float) -> Callable[[int, str], None]:
        last = [0.0]

        def publish(tokens: int, text: str) -> None:
            now = time.monotonic()
            if now - last[0] < FEEDBACK_PERIOD_S:
                return
            last[0] = now
            feedback = Ground.Feedback(
                tokens=tokens, partial_reasoning=text[-4000:], elapsed_ms=(now - started) * 1000.0
            )
            goal_handle.publish_feedback(feedback)

        return publish

    # ----------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        pub = self._diag_pub
        if pub is None:
            return
        queue = self.queue
        stats = self.stats
        values = {
            "engine_state": self.engine_state,
            "backend": self.engine.backend if self.engine else "",
            "model": self.engine.model_name if self.engine else "",
            "queue_depth": queue.depth if queue else 0,
            "queue_high_water": queue.high_water if queue else 0,
            "in_flight": queue.in_flight if queue else 0,
            "requests": stats.total,
            "errors": stats.errors,
            "buffered_frames": len(self.frames),
            "camera_info": "received" if self.camera_info is not None else "none",
        }
        values.update(
            {f"errors_{k}": v for k, v in sorted(stats.by_status.items()) if Status(k).is_error}
        )
        values.update({f"latency_ms_{k}": round(v, 1) for k, v in stats.percentiles().items()})
        level = DiagnosticStatus.OK if self.engine_state == "active" else DiagnosticStatus.WARN
        status = DiagnosticStatus(
            level=level,
            name=f"egm_ros: {self.get_fully_qualified_name()}",
            message=self.engine_state,
            hardware_id=str(values["model"]),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        pub.publish(array)


def _message_size(message) -> tuple[int, int]:
    return (int(getattr(message, "width", 0)), int(getattr(message, "height", 0)))
