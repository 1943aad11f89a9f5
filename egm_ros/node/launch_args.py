"""The rules of ``launch/grounding.launch.py``, ROS-free so that tests run them without the
``launch`` package (not installable here):

- a launch argument sets a node parameter only when the user gave it: the params file (the
  package's ``config/grounding.yaml`` or the user's ``params_file``) decides everything else,
  so ``backend: openai`` in a user's YAML is not overridden by an argument's default;
- ``camera`` remaps the three camera topics together (raw image, compressed image, camera
  info), so the node never pairs one camera's images with another's ``camera_info``;
- ``depth_camera`` remaps the depth image and its camera info together (to
  ``<depth_camera>/image_raw`` and ``<depth_camera>/camera_info``) and turns ``use_depth`` on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The node's camera topics (relative names), remapped together by ``camera``.
CAMERA_TOPICS = ("image_raw", "image_raw/compressed", "camera_info")
#: The node's depth topics and their names in a depth camera's namespace (``depth_camera``).
DEPTH_TOPICS = {"depth/image_raw": "image_raw", "depth/camera_info": "camera_info"}

#: Launch arguments that set the node parameter of the same name, only when given.
PARAMETER_ARGUMENTS = {
    "backend": "engine: embedded | transformers | vllm | openai | tensorrt_llm",
    "model": "model folder or name",
    "base_url": "OpenAI-compatible server (openai backend)",
    "mode": "default mode of `command`: visible | amodal",
}

#: name -> (default, description) of every launch argument. '' means "not given": the
#: parameters come from the params file, the topics from the node's own namespace.
ARGUMENTS: dict[str, tuple[str, str]] = {
    "namespace": ("", "namespace of the node and of its result/command topics"),
    "camera": (
        "",
        "camera namespace: image_raw, image_raw/compressed and camera_info are taken from "
        "<camera>/ ('' = the node's namespace, where sim_camera publishes by default)",
    ),
    "depth_camera": (
        "",
        "depth aligned to the camera, e.g. /camera/aligned_depth_to_color: depth/image_raw and "
        "depth/camera_info are taken from <depth_camera>/image_raw and /camera_info, and "
        "use_depth is on ('' = as the params file says, depth topics in the node's namespace)",
    ),
    **{
        name: ("", f"{text} ('' = as the params file says)")
        for name, text in PARAMETER_ARGUMENTS.items()
    },
    "params_file": ("", "parameters file ('' = the package's config/grounding.yaml)"),
}


def parameter_overrides(given: Mapping[str, str]) -> dict[str, Any]:
    """The parameters of the launch arguments the user gave (not empty); ``depth_camera``
    turns ``use_depth`` on."""
    overrides: dict[str, Any] = {
        name: given[name] for name in PARAMETER_ARGUMENTS if given.get(name, "")
    }
    if given.get("depth_camera", ""):
        overrides["use_depth"] = True
    return overrides


def node_parameters(params_file: str, given: Mapping[str, str]) -> list[Any]:
    """The node's ``parameters=``: the params file first, then only what was given (launch_ros
    applies them in order, so a given argument wins over the file and nothing else does)."""
    overrides = parameter_overrides(given)
    return [params_file, overrides] if overrides else [params_file]


def camera_remappings(camera: str, depth_camera: str = "") -> list[tuple[str, str]]:
    """Every camera topic into ``camera``, every depth topic into ``depth_camera`` (none for
    '': the node's own namespace)."""
    camera, depth_camera = camera.rstrip("/"), depth_camera.rstrip("/")
    remaps = [(topic, f"{camera}/{topic}") for topic in CAMERA_TOPICS] if camera else []
    if depth_camera:
        remaps += [(topic, f"{depth_camera}/{name}") for topic, name in DEPTH_TOPICS.items()]
    return remaps
