"""Checked parameter values (see :mod:`egm_ros.node.parameters`) to the settings of the layers
below: the engine, the grounder and the request path. ROS-free."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from egm_ros.core.engine import SamplingParams
from egm_ros.core.families import Family
from egm_ros.core.grounder import GrounderConfig
from egm_ros.core.prompts import PromptStyle
from egm_ros.core.types import Mode
from egm_ros.engines import EngineSettings
from egm_ros.node.request_path import PathSettings


def engine_settings(values: Mapping[str, Any]) -> EngineSettings:
    """The API key file comes from ``EGM_API_KEY_FILE``, never from a parameter."""
    return EngineSettings(
        backend=values["backend"],
        model=values["model"],
        base_url=values["base_url"],
        timeout=float(values["request_timeout"]),
        max_pixels=values["max_pixels"] or None,
        api_key_file=os.environ.get("EGM_API_KEY_FILE"),
        verify_tls=values["verify_tls"],
        cpu_threads=values["cpu_threads"],
        server_max_pixels=values["server_max_pixels"],
    )


def grounder_config(values: Mapping[str, Any]) -> GrounderConfig:
    family = values["model_family"]
    return GrounderConfig(
        family=Family(family) if family else None,
        prompt_style=PromptStyle(values["prompt_style"]),
        mode=Mode.parse(values["mode"]),
        max_pixels=values["max_pixels"],
        sampling=SamplingParams(
            max_new_tokens=values["max_new_tokens"], temperature=float(values["temperature"])
        ),
        timeout=float(values["request_timeout"]),
    )


def path_settings(values: Mapping[str, Any]) -> PathSettings:
    return PathSettings(
        mode=Mode.parse(values["mode"]),
        request_timeout=float(values["request_timeout"]),
        frame_stamp_tolerance=float(values["frame_stamp_tolerance"]),
        depth_stamp_tolerance=float(values["depth_stamp_tolerance"]),
        publish_reasoning=values["publish_reasoning"],
        queue_size=values["queue_size"],
    )
