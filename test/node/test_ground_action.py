"""The ``ground`` action's own parts without an executor: the feedback's partial reasoning and
the goal check, and a result that comes after the server went away."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.action import GoalResponse  # noqa: E402

from egm_ros.action import Ground  # noqa: E402
from egm_ros.msg import GroundingCommand  # noqa: E402
from egm_ros.node.frame_buffer import FrameBuffer  # noqa: E402
from egm_ros.node.ground_action import (  # noqa: E402
    GroundAction,
    feedback_publisher,
    reasoning_so_far,
)
from egm_ros.node.request_path import PathSettings, RequestPath  # noqa: E402

pytestmark = pytest.mark.ros


class GoalHandle:
    def __init__(self) -> None:
        self.feedback: list[Ground.Feedback] = []

    def publish_feedback(self, feedback: Ground.Feedback) -> None:
        self.feedback.append(feedback)


@pytest.mark.parametrize(
    ("text", "reasoning"),
    [
        ("The mug is left of", "The mug is left of"),
        ("<think>The mug is left", "The mug is left"),
        ('The mug.</think>\n```json\n[{"bbox_2d": [1, 2, 3, 4]}]\n```', "The mug."),
        ("<think>\nThe mug.\n</think>\n```json", "The mug."),
    ],
)
def test_partial_reasoning_is_the_reasoning_without_tags_or_answer(text, reasoning) -> None:
    # Issue 20, point 9: feedback carried `</think>` and the JSON answer.
    assert reasoning_so_far(text) == reasoning
    handle = GoalHandle()
    feedback_publisher(handle, 0.0)(12, text)
    (feedback,) = handle.feedback
    assert feedback.partial_reasoning == reasoning and feedback.tokens == 12


class Logger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, line: str) -> None:
        self.lines.append(line)


@pytest.mark.parametrize(
    ("mode", "response"),
    [
        (GroundingCommand.MODE_DEFAULT, GoalResponse.ACCEPT),
        (GroundingCommand.MODE_VISIBLE, GoalResponse.ACCEPT),
        (GroundingCommand.MODE_AMODAL, GoalResponse.ACCEPT),
        (7, GoalResponse.REJECT),
    ],
)
def test_a_goal_with_an_unknown_mode_is_rejected(mode: int, response: GoalResponse) -> None:
    action = GroundAction.__new__(GroundAction)  # the goal check alone, without a server
    action.path = RequestPath("cam", FrameBuffer(1.0), PathSettings(), now=Time, warn=print)
    logger = Logger()
    action._node = type("Node", (), {"get_logger": lambda self: logger})()
    assert action.accept(Ground.Goal(prompt="the mug", mode=mode)) == response
    if response == GoalResponse.REJECT:
        (line,) = logger.lines
        assert "'the mug' rejected: unknown mode 7" in line


class GoneGoalHandle(GoalHandle):
    """A goal whose server went away (the node shut down) before its result came."""

    def __init__(self) -> None:
        super().__init__()
        self.request = Ground.Goal(prompt="the mug")
        self.goal_id = type("Id", (), {"uuid": bytes(16)})()

    def execute(self) -> None:
        raise AttributeError("'NoneType' object has no attribute 'create_task'")


def test_a_result_that_cannot_end_its_goal_is_one_warning() -> None:
    action = GroundAction.__new__(GroundAction)  # start() alone, without a server
    action.path = RequestPath("cam", FrameBuffer(1.0), PathSettings(), now=Time, warn=print)
    logger = Logger()
    action._node = type("Node", (), {"get_logger": lambda self: logger})()
    action._lock, action._cancels, action._results = threading.Lock(), {}, {}
    action.start(GoneGoalHandle())  # no frame and no engine: answered at once
    (line,) = logger.lines
    assert "'the mug': its result could not end it" in line
    assert action._results == {} and action._cancels == {}
