"""The `grounding_node` executable started as users start it without `ros2 launch`:
`grounding_node --ros-args -p ... -r __ns:=... --params-file config/grounding.yaml`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from node_harness import Harness, make_image, wait_for  # noqa: E402
from openai_server import ScriptedOpenAIServer  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from egm_ros.msg import GroundingResult  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[2]


def test_executable_with_ros_args_serves_a_command() -> None:
    exe = shutil.which("grounding_node", path=str(Path(sys.executable).parent))
    assert exe, "grounding_node console script is not installed in the venv"
    reply = '</think>```json\n[{"bbox_2d": [0, 0, 500, 500], "label": "mug"}]\n```'
    with ScriptedOpenAIServer(reply=lambda request: reply, model="EGM-test") as server:
        proc = subprocess.Popen(
            [
                exe,
                "--ros-args",
                "--params-file",
                str(REPO / "config" / "grounding.yaml"),
                "-p",
                "backend:=openai",
                "-p",
                f"base_url:={server.base_url}",
                "-p",
                "model_family:=qwen3_vl",
                "-p",
                "mode:=amodal",
                "-r",
                "__ns:=/cli_cam",
                "-r",
                "__node:=grounder",
            ],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        harness = Harness()
        try:
            probe = harness.probe("/cli_cam")
            wait_for(probe.connected, 30)
            for _ in range(10):  # a camera at 10 Hz, while discovery settles
                probe.image_pub.publish(make_image(200, 100, Time(sec=5)))
                time.sleep(0.1)
            probe.command_pub.publish(String(data="the mug"))
            (result,) = probe.wait_results(1, timeout=30)
        finally:
            harness.close()
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
    assert result.status == GroundingResult.STATUS_OK, result.status_message + out
    assert result.mode == GroundingResult.MODE_AMODAL  # -p overrides the params file
    assert result.header.stamp.sec == 5 and result.image_width == 200
    assert proc.returncode == 0, out
    assert "engine ready" in out
