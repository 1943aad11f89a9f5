"""The vision_msgs outputs against vision_msgs' documented field layout: the test-only
vision_msgs package (test/interfaces/vision_msgs) is built into build/ (vision_msgs_build) and
vision_msgs_cases.py runs in a pytest process that imports it. The rest of the suite sees no
vision_msgs, as on a machine without it (test_node_depth checks the info line)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")

from vision_msgs_build import REPO, build_vision_msgs, vision_env  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CASES = REPO / "test" / "node" / "vision_msgs_cases.py"


def test_vision_msgs_outputs_with_the_documented_layout() -> None:
    env = vision_env(build_vision_msgs())
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider", "-rA"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.search(r"\b[3-9] passed\b", summary) and "skipped" not in summary, tail
