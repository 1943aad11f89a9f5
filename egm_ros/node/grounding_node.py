"""The grounding node: lifecycle, publishers, subscriptions and thin callbacks over
:class:`~egm_ros.node.request_path.RequestPath` (a command's whole path) and
:class:`egm_ros.core.grounder.Grounder`.

Lifecycle: configure checks every parameter and loads the engine, activate subscribes and serves
the ``ground`` action, deactivate and cleanup undo that. With ``autostart`` (the default) it
configures and activates itself, so it works with or without a lifecycle manager.

Every command gets exactly one result: on ``result`` for topic commands, as the action result
for goals. Inference runs in worker threads behind a bounded queue; when it is full the command
is answered at once with status busy.
"""

from __future__ import annotations

import gc
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from egm_ros.core.engine import Engine
from egm_ros.core.grounder import Grounder
from egm_ros.core.types import GroundingError, Status
from egm_ros.engines import create_engine
from egm_ros.msg import GroundingCommand, GroundingResult
from egm_ros.node.conversions import stamp_to_ns
from egm_ros.node.debug_overlay import DebugOverlay
from egm_ros.node.depth_input import DepthInput
from egm_ros.node.diagnostics import diagnostic_array
from egm_ros.node.frame_buffer import FrameBuffer
from egm_ros.node.ground_action import GroundAction
from egm_ros.node.parameters import PARAMETERS, check_all, descriptor
from egm_ros.node.qos import COMMAND_QOS, RESULT_QOS, image_qos, warn_on_incompatible_qos
from egm_ros.node.request_path import PathSettings, RequestPath
from egm_ros.node.settings import engine_settings, grounder_config, path_settings
from egm_ros.node.vision_outputs import VisionOutputs


class GroundingNode(LifecycleNode):
    def __init__(
        self, node_name: str = "grounding_node", *, start: bool = True, **kwargs: Any
    ) -> None:
        """``start=False``: the caller runs :meth:`start` itself, so that a node interrupted
        while it starts (Ctrl-C during the model load) is already the caller's to clean up."""
        super().__init__(node_name, **kwargs)
        #: Start-up values that are not allowed (name -> error line); configure refuses while
        #: any is left. Each was declared with its default instead, so rclpy raises nothing.
        self._startup_errors = self._declare_parameters()
        self.add_pre_set_parameters_callback(self._coerce_parameters)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._group = ReentrantCallbackGroup()
        self.engine: Engine | None = None
        self.camera_info: CameraInfo | None = None
        self.engine_state = "unconfigured"
        self._overlay = DebugOverlay(None)
        self.path = RequestPath(
            self.get_name(),
            FrameBuffer(self._param("frame_buffer_seconds")),
            PathSettings(),
            now=lambda: self.get_clock().now().to_msg(),
            warn=self._warn,
            on_result=self._overlay,
            on_reply=self._publish_vision,
            frame_wanted=self._overlay.active,
        )
        self._vision: VisionOutputs | None = None
        self._inputs: list[Any] = []
        self._action: GroundAction | None = None
        self._result_pub: Any = None
        # /diagnostics from the start, so an unconfigured node says why (level ERROR).
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics, self._group)
        if start:
            self.start()

    def start(self) -> None:
        """With ``autostart``: configure (the engine loads here), then activate."""
        if self._param("autostart"):
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    def _warn(self, message: str) -> None:
        self.get_logger().warning(message)

    # ----------------------------------------------------------------- parameters
    def _declare_parameters(self) -> dict[str, str]:
        """Declare every parameter with its start-up value when that value is allowed (an
        integer where a double is declared counts as that double), else with its default; the
        error lines of the others, by name. rclpy would raise a traceback for a wrong type or
        a value out of range, before the node could say which parameter is wrong."""
        overrides: dict[str, Parameter] = getattr(self, "_parameter_overrides", {})
        errors: dict[str, str] = {}
        for param in PARAMETERS.values():
            given = overrides.get(param.name)
            value = param.default if given is None else param.coerce(given.value)
            error = param.error(value)
            if error is not None:
                errors[param.name] = error
                value = param.default
            self.declare_parameter(param.name, value, descriptor(param), ignore_override=True)
        return errors

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _values(self) -> dict[str, Any]:
        return {name: self._param(name) for name in PARAMETERS}

    def _coerce_parameters(self, params: list[Parameter]) -> list[Parameter]:
        """At run time too, an integer where a double is declared is that double (rclpy would
        refuse it as the wrong type)."""
        return [
            Parameter(p.name, value=PARAMETERS[p.name].coerce(p.value))
            if p.name in PARAMETERS
            else p
            for p in params
        ]

    def _check_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Run-time changes pass the same check as start-up values (rclpy itself refuses
        read-only ones and wrong types)."""
        errors = check_all({p.name: p.value for p in params})
        return SetParametersResult(successful=not errors, reason="; ".join(errors))

    def _apply_parameters(self, params: list[Parameter]) -> None:
        for param in params:  # a good value set at run time replaces a refused start-up one
            self._startup_errors.pop(param.name, None)
        values = self._values()
        if check_all(values):
            return  # not configured yet with values that configure will refuse
        self.path.settings = path_settings(values)
        if self.path.grounder is not None:
            self.path.grounder.config = grounder_config(values)
        self.path.frames.seconds = values["frame_buffer_seconds"]
        if self.path.depth is not None:
            self.path.depth.frames.seconds = values["frame_buffer_seconds"]

    # ----------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = self._values()
        errors = [*self._startup_errors.values(), *check_all(values)]
        if errors:
            for error in errors:
                self.get_logger().error(f"cannot configure: {error}")
            self.engine_state = f"failed: {'; '.join(errors)}"
            return TransitionCallbackReturn.FAILURE
        settings = engine_settings(values)
        self.get_logger().info(f"loading engine {settings.backend!r} model {settings.model!r}")
        try:
            engine = create_engine(settings)
        except GroundingError as err:
            self.engine_state = f"failed: {err.message}"
            self.get_logger().error(f"cannot load the engine: {err.status.value}: {err.message}")
            return TransitionCallbackReturn.FAILURE
        try:
            self.path.settings = path_settings(values)
            self.path.frames.seconds = values["frame_buffer_seconds"]
            self.path.start(Grounder(engine, grounder_config(values)), values["workers"])
        except Exception as err:  # noqa: BLE001 - whatever fails, the engine is not leaked
            engine.close()
            self.engine_state = f"failed: {err}"
            self.get_logger().error(f"cannot configure: {type(err).__name__}: {err}")
            return TransitionCallbackReturn.FAILURE
        self.engine = engine
        self._result_pub = self.create_publisher(GroundingResult, "result", RESULT_QOS)
        self._overlay.publisher = self.create_publisher(Image, "debug_image", 2)
        if values["use_depth"]:
            self.path.depth = DepthInput(values["frame_buffer_seconds"])
        self._vision = VisionOutputs(self, values["use_depth"], RESULT_QOS)
        self.engine_state = "ready"
        self._check_engine(engine, settings.backend)
        # What configure built lives until cleanup: frozen, full collections skip it (17 to
        # 33 ms each here before, during which no callback runs).
        gc.collect()
        gc.freeze()
        return TransitionCallbackReturn.SUCCESS

    def _check_engine(self, engine: Engine, backend: str) -> None:
        """Say at once whether the engine answers (a server that is down is the usual case):
        configured either way, since a server may come up later, but /diagnostics is ERROR
        and the log says so until a request succeeds."""
        self.path.stats.engine_health = None
        name = f"{backend} {self._param('model') or engine.model_name}".rstrip()
        if engine.health():
            self.get_logger().info(f"engine ready: {name}")
            return
        message = "it does not answer"
        if backend == "openai":
            message = (
                f"the server at {self._param('base_url')} does not answer its model list "
                "(down, or refusing the API key)"
            )
        self.path.stats.note_engine(Status.ENGINE_UNAVAILABLE, message)
        self.get_logger().warning(
            f"engine {name} configured, but {message}; requests get engine_unavailable "
            "until it does"
        )

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        reliability = self._param("image_reliability")
        image_hint = (
            "the camera may publish best effort: set image_reliability to best_effort"
            if reliability == "reliable"
            else ""
        )
        image = (CompressedImage, "image_raw/compressed")
        if not self._param("compressed_input"):
            image = (Image, "image_raw")
        self._subscribe(*image, self.path.add_frame, image_qos(reliability), image_hint)
        self._subscribe(CameraInfo, "camera_info", self._on_camera_info, qos_profile_sensor_data)
        depth = self.path.depth
        if depth is not None:  # use_depth
            sensor = qos_profile_sensor_data
            self._subscribe(Image, "depth/image_raw", depth.add_frame, image_qos(reliability))
            self._subscribe(CameraInfo, "depth/camera_info", depth.set_info, sensor)
        command_hint = "publish commands with reliable QoS"
        self._subscribe(String, "command", self._on_command, COMMAND_QOS, command_hint)
        self._subscribe(
            GroundingCommand,
            "grounding_command",
            self._on_grounding_command,
            COMMAND_QOS,
            command_hint,
        )
        self._action = GroundAction(self, self.path, self._group)
        self.engine_state = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self.engine_state = "ready"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState | None) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._release()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self.destroy_publisher(self._diag_pub)
            self._diag_timer = self._diag_pub = None
        return TransitionCallbackReturn.SUCCESS

    def _subscribe(
        self, msg_type: type, topic: str, callback: Any, qos: Any, hint: str = ""
    ) -> None:
        """A subscription whose incompatible-QoS event is a warning naming its topic."""
        events = warn_on_incompatible_qos(self._warn, self.resolve_topic_name(topic), hint)
        sub = self.create_subscription(
            msg_type, topic, callback, qos, callback_group=self._group, event_callbacks=events
        )
        self._inputs.append(sub)

    def _stop_inputs(self) -> None:
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []
        if self._action is not None:
            self._action.destroy()
            self._action = None

    def _release(self) -> None:
        """Serve what is queued (every command gets its result), then free the engine."""
        self.path.stop()
        for pub in (self._result_pub, self._overlay.publisher):
            if pub is not None:
                self.destroy_publisher(pub)
        self._result_pub = self._overlay.publisher = None
        if self._vision is not None:
            self._vision.destroy()
            self._vision = None
        self.path.depth = None
        if self.engine is not None:
            self.engine.close()
        self.engine = None
        self.engine_state = "unconfigured"

    # ----------------------------------------------------------------- callbacks
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _on_command(self, msg: String) -> None:
        self.path.submit(msg.data, self._publish_result)

    def _on_grounding_command(self, msg: GroundingCommand) -> None:
        self.path.submit(
            msg.prompt,
            self._publish_result,
            mode_code=msg.mode,
            request_id=msg.request_id,
            stamp_ns=stamp_to_ns(msg.frame_stamp),
        )

    def _publish_result(self, result: GroundingResult) -> None:
        pub = self._result_pub
        if pub is not None:
            pub.publish(result)

    def _publish_vision(self, result: GroundingResult) -> None:
        vision = self._vision
        if vision is not None:
            vision.publish(result)

    def _publish_diagnostics(self) -> None:
        pub = self._diag_pub
        if pub is None:
            return
        array = diagnostic_array(
            self.get_fully_qualified_name(),
            self.path,
            self.engine_state,
            self._param("backend"),  # as configured: `embedded`, not its engine's name
            self.camera_info is not None,
            self.get_clock().now().to_msg(),
            model=self._param("model"),
        )
        pub.publish(array)
