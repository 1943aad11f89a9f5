"""Shared test set-up: ROS 2 stays on loopback in a per-run domain, and helpers in
test/support/ are importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Before anything imports rclpy: DDS discovery on this machine only, and a domain of our own so
# parallel runs (or a developer's other nodes) do not see each other.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent / "support"))


def _require_ml() -> bool:
    """`make test` sets EGM_REQUIRE_ML=1: there a missing torch/transformers is a failure,
    not a skip, so CI cannot pass without running the in-process engines."""
    return os.environ.get("EGM_REQUIRE_ML") == "1"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's random tiny Qwen3-VL, built once per test session (a few seconds)."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as err:
        if _require_ml():
            pytest.fail(f"ML requirements missing: {err}")
        pytest.skip(f"ML requirements missing: {err}")
    from egm_ros.models.tiny_qwen3_vl import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen3_vl"), seed=0)
