"""The ``ground`` action (``egm_ros/action/Ground``): a goal goes down the same
:class:`~egm_ros.node.request_path.RequestPath` as a topic command; this module adds what only
an action has: throttled feedback while the model generates, cancel, and the goal's end state
from the result's status."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import CallbackGroup

from egm_ros.action import Ground
from egm_ros.core.parsing import THINK_CLOSE, THINK_OPEN
from egm_ros.msg import GroundingResult
from egm_ros.node.conversions import mode_from_msg
from egm_ros.node.request_path import RequestPath

#: Feedback is throttled to this period so a fast engine does not flood the action.
FEEDBACK_PERIOD_S = 0.1
#: How often a waiting goal looks for a cancel request.
_CANCEL_POLL_S = 0.05


class GroundAction:
    """The action server of one node, serving goals through ``path``."""

    def __init__(self, node: Any, path: RequestPath, group: CallbackGroup) -> None:
        self.path = path
        self._node = node
        self.server = ActionServer(
            node,
            Ground,
            "ground",
            execute_callback=self.execute,
            goal_callback=self.accept,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=group,
        )

    def accept(self, goal: Ground.Goal) -> GoalResponse:
        """A goal whose mode is no ``MODE_*`` is rejected (never accepted, then aborted),
        decoded as :meth:`RequestPath.submit` decodes it."""
        try:
            mode_from_msg(goal.mode, self.path.settings.mode)
        except ValueError as err:
            self._node.get_logger().warning(f"goal {goal.prompt[:60]!r} rejected: {err}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def destroy(self) -> None:
        self.server.destroy()

    def execute(self, goal_handle: Any) -> Ground.Result:
        """Runs in an executor thread until the goal's one result is in."""
        goal = goal_handle.request
        done = threading.Event()
        cancel = threading.Event()
        holder: list[GroundingResult] = []

        def reply(result: GroundingResult) -> None:
            holder.append(result)
            done.set()

        self.path.submit(
            goal.prompt,
            reply,
            mode_code=goal.mode,
            request_id=goal.request_id,
            image=goal.image,
            on_progress=feedback_publisher(goal_handle, time.monotonic()),
            cancel=cancel,
        )
        while not done.wait(_CANCEL_POLL_S):
            if goal_handle.is_cancel_requested:
                cancel.set()
        result = holder[0]
        if result.status == GroundingResult.STATUS_CANCELLED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif result.status in (GroundingResult.STATUS_OK, GroundingResult.STATUS_NOT_FOUND):
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return Ground.Result(result=result)


def feedback_publisher(goal_handle: Any, started: float) -> Callable[[int, str], None]:
    """A progress callback that publishes at most one feedback per ``FEEDBACK_PERIOD_S``."""
    last = [0.0]

    def publish(tokens: int, text: str) -> None:
        now = time.monotonic()
        if now - last[0] < FEEDBACK_PERIOD_S:
            return
        last[0] = now
        feedback = Ground.Feedback(
            tokens=tokens,
            partial_reasoning=reasoning_so_far(text)[-4000:],
            elapsed_ms=(now - started) * 1000.0,
        )
        goal_handle.publish_feedback(feedback)

    return publish


def reasoning_so_far(text: str) -> str:
    """The reasoning in the text generated so far: without the think tags, and without what
    follows ``</think>`` (the answer, which comes with the result)."""
    head = text.split(THINK_CLOSE, 1)[0]
    return head.replace(THINK_OPEN, "", 1).strip()
