"""The grounding node's parameters: names, defaults, ranges and descriptions in one table, kept
free of ROS imports so the config file and launch file can be checked against it anywhere.
config/grounding.yaml documents every entry (a test keeps the two equal)."""

from __future__ import annotations

from egm_ros.core.engine import DEFAULT_MAX_NEW_TOKENS
from egm_ros.core.families import Family
from egm_ros.core.prompts import PromptStyle
from egm_ros.engines import BACKENDS

#: name -> (default, keyword arguments of the node's ParameterDescriptor builder).
PARAMETERS: dict[str, tuple[object, dict]] = {
    "backend": ("embedded", dict(description="Engine.", read_only=True, choices=BACKENDS)),
    "model": (
        "",
        dict(description="Model folder or name ('' = the backend's default).", read_only=True),
    ),
    "model_family": (
        "",
        dict(
            description="Answer format ('' = detect from the model).",
            read_only=True,
            choices=("", *(f.value for f in Family)),
        ),
    ),
    "prompt_style": (
        "egm",
        dict(
            description="egm for EGM checkpoints, base for plain Qwen3-VL.",
            read_only=True,
            choices=tuple(s.value for s in PromptStyle),
        ),
    ),
    "base_url": (
        "http://127.0.0.1:8000/v1",
        dict(
            description=(
                "OpenAI-compatible server of the openai backend (vllm serve, trtllm-serve). "
                "The API key comes from the EGM_API_KEY environment variable or the file "
                "named by EGM_API_KEY_FILE, never from a parameter."
            ),
            read_only=True,
        ),
    ),
    "verify_tls": (
        True,
        dict(description="Verify the server's TLS certificate (openai).", read_only=True),
    ),
    "mode": (
        "visible",
        dict(description="Default mode of `command` messages.", choices=("visible", "amodal")),
    ),
    "max_new_tokens": (
        DEFAULT_MAX_NEW_TOKENS,
        dict(description="Generation limit per query.", int_range=(1, 8192)),
    ),
    "temperature": (
        0.0,
        dict(
            description="Sampling temperature (0 = greedy, as EGM evaluates).",
            float_range=(0.0, 2.0),
        ),
    ),
    "max_pixels": (
        1003520,
        dict(
            description="Frames with more pixels are downscaled before inference (0 = never).",
            int_range=(0, 67_108_864),
        ),
    ),
    "request_timeout": (
        60.0,
        dict(description="Seconds before a request fails with timeout.", float_range=(0.1, 3600.0)),
    ),
    "queue_size": (
        8,
        dict(description="Requests waiting beyond this are answered busy.", int_range=(1, 1000)),
    ),
    "workers": (
        4,
        dict(
            description="Requests in flight at once (engines batch them).",
            read_only=True,
            int_range=(1, 64),
        ),
    ),
    "publish_reasoning": (True, dict(description="Include the model's reasoning in results.")),
    "frame_buffer_seconds": (
        2.0,
        dict(description="How long frames are kept for commands.", float_range=(0.05, 60.0)),
    ),
    "frame_stamp_tolerance": (
        0.1,
        dict(
            description="Max offset (s) between a command's frame_stamp and the frame used.",
            float_range=(0.0, 60.0),
        ),
    ),
    "compressed_input": (
        False,
        dict(description="Subscribe to image_raw/compressed instead of image_raw.", read_only=True),
    ),
    "autostart": (True, dict(description="Configure and activate at start-up.", read_only=True)),
}
