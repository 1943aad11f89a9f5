"""The README's command lines for the node without ``ros2 launch``, run as written (in-process):
it reads the camera's image, compressed image and camera info from one camera; with depth, the
depth image and its camera info from where the command says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.context import Context  # noqa: E402

from egm_ros.node.grounding_node import GroundingNode  # noqa: E402
from egm_ros.node.launch_args import CAMERA_TOPICS  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[2]


def readme_command(program: str, having: str) -> list[str]:
    """The one command of a ```bash block of README.md that starts with ``program`` and has
    the argument ``having``."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    commands = [
        shlex.split(command.replace("\\\n", " "))
        for block in blocks
        for command in re.split(r"\n(?=\S)", block)
        if command.startswith(program + " ")
    ]
    commands = [command for command in commands if having in command]
    assert len(commands) == 1, commands
    return commands[0]


def test_the_readme_command_line_remaps_the_cameras_three_topics_together() -> None:
    # Issue 20, point 7: `-r image_raw:=/front_camera/image_raw` alone left camera_info on
    # /camera_info, so diagnostics reported another camera's info.
    command = readme_command("grounding_node", having="backend:=openai")
    args = command[1:]
    assert args[0] == "--ros-args"
    at = args.index("--params-file") + 1
    args[at] = str(REPO / args[at])  # as written, run from the repository's root
    context = Context()
    rclpy.init(args=[*args, "-p", "autostart:=false"], context=context)
    try:
        node = GroundingNode(context=context)
        resolved = {topic: node.resolve_topic_name(topic) for topic in CAMERA_TOPICS}
        backend = node.get_parameter("backend").value
        node.destroy_node()
    finally:
        context.try_shutdown()
    assert resolved == {topic: f"/front_camera/{topic}" for topic in CAMERA_TOPICS}
    assert backend == "openai"


@pytest.mark.parametrize(
    ("topic", "profile"),
    [("command", "COMMAND_QOS"), ("grounding_command", "COMMAND_QOS"), ("result", "RESULT_QOS")],
)
def test_the_readme_states_the_qos_of_commands_and_results(topic: str, profile: str) -> None:
    # Issue 20, point 9: the QoS of `command` and `result` was undocumented.
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

    from egm_ros.node import qos

    qos_profile = getattr(qos, profile)
    (row,) = [
        line
        for line in (REPO / "README.md").read_text().splitlines()
        if line.startswith(f"| `{topic}`")
    ]
    assert qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert qos_profile.durability == DurabilityPolicy.VOLATILE
    assert qos_profile.history == HistoryPolicy.KEEP_LAST
    assert f"QoS: reliable, volatile, keep last {qos_profile.depth} |" in row


def test_the_readme_depth_command_line_reads_aligned_depth() -> None:
    command = readme_command("grounding_node", having="use_depth:=true")
    args = command[1:]
    at = args.index("--params-file") + 1
    args[at] = str(REPO / args[at])
    context = Context()
    rclpy.init(args=[*args, "-p", "autostart:=false"], context=context)
    try:
        node = GroundingNode(context=context)
        topics = ("image_raw", "camera_info", "depth/image_raw", "depth/camera_info")
        resolved = [node.resolve_topic_name(topic) for topic in topics]
        use_depth = node.get_parameter("use_depth").value
        node.destroy_node()
    finally:
        context.try_shutdown()
    assert use_depth is True
    assert resolved == [
        "/camera/color/image_raw",
        "/camera/color/camera_info",
        "/camera/aligned_depth_to_color/image_raw",
        "/camera/aligned_depth_to_color/camera_info",
    ]
