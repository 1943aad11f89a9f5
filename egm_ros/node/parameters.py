"""The grounding node's parameters in one typed table: name, type (that of the default),
default, description, read-only or not, and the allowed choices or range. The table drives the
declaration, the descriptors ``ros2 param describe`` shows, the check of every value (at
start-up as at run time) and the check of config/grounding.yaml (a test keeps the two equal).

ROS-free, so the config and launch files can be checked against it anywhere; only
:func:`descriptor` imports ``rcl_interfaces``, when the node calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from egm_ros.core.engine import DEFAULT_MAX_NEW_TOKENS
from egm_ros.core.families import Family
from egm_ros.core.prompts import PromptStyle
from egm_ros.engines import BACKENDS, DEFAULT_CPU_THREADS

Value = bool | int | float | str


@dataclass(frozen=True)
class Param:
    """One parameter. Its type is the default's; ``choices`` (strings) or ``limits``
    (inclusive numbers) say what is allowed."""

    name: str
    default: Value
    description: str
    read_only: bool = False
    choices: tuple[str, ...] = ()
    limits: tuple[float, float] | None = None

    @property
    def type(self) -> type:
        return type(self.default)

    def allowed(self) -> str:
        """What is allowed, as the error line and the descriptor say it."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.limits is not None:
            low, high = (self.type(v) for v in self.limits)
            return f"{self.type.__name__} from {low} to {high}"
        return f"a {self.type.__name__}"

    def coerce(self, value: Any) -> Any:
        """``value`` as the declared type where that loses nothing: an integer where a double
        is declared (``temperature: 1``, the most common YAML slip) is that double."""
        if self.type is float and _has_type(value, int):
            return float(value)
        return value

    def error(self, value: Any) -> str | None:
        """One line naming the parameter, the value and what is allowed; ``None`` when
        ``value`` is allowed."""
        if not _has_type(value, self.type):
            ok = False
        elif self.choices:
            ok = value in self.choices
        elif self.limits is not None:
            ok = self.limits[0] <= value <= self.limits[1]
        else:
            ok = True
        if ok:
            return None
        return f"parameter {self.name}: {value!r} is not allowed; {self.allowed()}"


def _has_type(value: Any, wanted: type) -> bool:
    if wanted is float:  # an integer where a double is declared is the same number
        return isinstance(value, int | float) and not isinstance(value, bool)
    if wanted is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, wanted)


_TABLE = (
    Param("backend", "embedded", "Engine.", read_only=True, choices=BACKENDS),
    Param("model", "", "Model folder or name ('' = the backend's default).", read_only=True),
    Param(
        "model_family",
        "",
        "Answer format ('' = detect from the model).",
        read_only=True,
        choices=("", *(f.value for f in Family)),
    ),
    Param(
        "prompt_style",
        "egm",
        "egm for EGM checkpoints, base for plain Qwen3-VL.",
        read_only=True,
        choices=tuple(s.value for s in PromptStyle),
    ),
    Param(
        "base_url",
        "http://127.0.0.1:8000/v1",
        "OpenAI-compatible server of the openai backend (vllm serve, trtllm-serve). The API key "
        "comes from the EGM_API_KEY environment variable or the file named by EGM_API_KEY_FILE, "
        "never from a parameter.",
        read_only=True,
    ),
    Param("verify_tls", True, "Verify the server's TLS certificate (openai).", read_only=True),
    Param("mode", "visible", "Default mode of `command` messages.", choices=("visible", "amodal")),
    Param(
        "max_new_tokens", DEFAULT_MAX_NEW_TOKENS, "Generation limit per query.", limits=(1, 8192)
    ),
    Param(
        "temperature",
        0.0,
        "Sampling temperature (0 = greedy, as EGM evaluates).",
        limits=(0.0, 2.0),
    ),
    Param(
        "max_pixels",
        1003520,
        "Frames with more pixels are downscaled before inference (0 = never); lowers a model's"
        " own processor limit, never raises it.",
        limits=(0, 67_108_864),
    ),
    Param(
        "server_max_pixels",
        0,
        "openai backend: the server's image processor resizes every frame to at most this many "
        "pixels (vLLM: per-request mm_processor_kwargs; start vllm serve with "
        "--trust-request-mm-kwargs), so compressed frames go to it as they are, undecoded "
        "(0 = off: the node resizes). Set at most the model's own processor limit.",
        read_only=True,
        limits=(0, 67_108_864),
    ),
    Param(
        "request_timeout",
        60.0,
        "Seconds before a request fails with timeout.",
        limits=(0.1, 3600.0),
    ),
    Param("queue_size", 8, "Requests waiting beyond this are answered busy.", limits=(1, 1000)),
    Param(
        "workers",
        4,
        "Requests in flight at once (engines batch them).",
        read_only=True,
        limits=(1, 64),
    ),
    Param(
        "cpu_threads",
        DEFAULT_CPU_THREADS,
        "Torch intra-op threads of the embedded/transformers engine on CPU (0 = one per core). "
        "1 holds up on a CPU shared with other work; more threads wait for each other there.",
        read_only=True,
        limits=(0, 256),
    ),
    Param("publish_reasoning", True, "Include the model's reasoning in results."),
    Param(
        "frame_buffer_seconds",
        2.0,
        "How long frames are kept for commands.",
        limits=(0.05, 60.0),
    ),
    Param(
        "frame_stamp_tolerance",
        0.1,
        "Max offset (s) between a command's frame_stamp and the frame used.",
        limits=(0.0, 60.0),
    ),
    Param(
        "compressed_input",
        False,
        "Subscribe to image_raw/compressed instead of image_raw.",
        read_only=True,
    ),
    Param(
        "image_reliability",
        "best_effort",
        "QoS reliability of the image subscription: best_effort (sensor data; also receives "
        "from reliable publishers) or reliable (receives only from reliable publishers).",
        read_only=True,
        choices=("best_effort", "reliable"),
    ),
    Param(
        "use_depth",
        False,
        "Subscribe to depth/image_raw and depth/camera_info (a depth image aligned to the colour "
        "image, 16UC1 millimetres or 32FC1 metres) and give each object 3D boxes.",
        read_only=True,
    ),
    Param(
        "depth_stamp_tolerance",
        0.05,
        "Max offset (s) between the colour frame a command uses and the depth frame matched to it.",
        limits=(0.0, 10.0),
    ),
    Param("autostart", True, "Configure and activate at start-up.", read_only=True),
)

#: name -> :class:`Param`, in declaration order.
PARAMETERS: dict[str, Param] = {p.name: p for p in _TABLE}


def check_all(values: Mapping[str, Any]) -> list[str]:
    """The error line of every value that is not allowed (empty when all are)."""
    return [
        error
        for name, value in values.items()
        if name in PARAMETERS and (error := PARAMETERS[name].error(value)) is not None
    ]


def descriptor(param: Param) -> Any:
    """The ``rcl_interfaces/ParameterDescriptor`` of ``param`` (range and choices included,
    so ``ros2 param describe`` shows them)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    text = param.description
    if param.choices:
        text = f"{text} One of: {', '.join(repr(c) for c in param.choices)}."
    desc = ParameterDescriptor(description=text, read_only=param.read_only)
    if param.limits is not None and param.type is int:
        low, high = (int(v) for v in param.limits)
        desc.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    elif param.limits is not None:
        low, high = (float(v) for v in param.limits)
        desc.floating_point_range = [FloatingPointRange(from_value=low, to_value=high)]
    return desc
