"""The ``ground`` action (``egm_ros/action/Ground``): a goal goes down the same
:class:`~egm_ros.node.request_path.RequestPath` as a topic command; this module adds what only
an action has: throttled feedback while the model generates, cancel, and the goal's end state
from the result's status.

No callback here waits for the model: an accepted goal is submitted at once, and only when its
result is in does it ``execute`` (rclpy's deferred execution), which then just sets the end
state. So the node runs on one executor thread, and a goal never holds it (rclpy's
``MultiThreadedExecutor`` delayed commands by up to 1.5 s, measured; issue 17)."""

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


class GroundAction:
    """The action server of one node, serving goals through ``path``."""

    def __init__(self, node: Any, path: RequestPath, group: CallbackGroup) -> None:
        self.path = path
        self._node = node
        self._lock = threading.Lock()
        #: Per goal (its uuid): the cancel event its request watches, then its result.
        self._cancels: dict[bytes, threading.Event] = {}
        self._results: dict[bytes, GroundingResult] = {}
        self.server = ActionServer(
            node,
            Ground,
            "ground",
            execute_callback=self.finish,
            goal_callback=self.accept,
            handle_accepted_callback=self.start,
            cancel_callback=self.cancel,
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

    def start(self, goal_handle: Any) -> None:
        """An accepted goal goes down the request path now; it executes once its result is in
        (from a worker thread, or at once for a goal answered without the engine)."""
        goal, key = goal_handle.request, bytes(goal_handle.goal_id.uuid)
        cancel = threading.Event()
        with self._lock:
            self._cancels[key] = cancel

        def reply(result: GroundingResult) -> None:
            with self._lock:
                self._cancels.pop(key, None)
                self._results[key] = result
            try:
                goal_handle.execute()  # schedules finish() on the node's executor
            except Exception as err:  # noqa: BLE001 - the server went away (node shut down)
                with self._lock:
                    self._results.pop(key, None)
                self._node.get_logger().warning(
                    f"goal {goal.prompt[:60]!r}: its result could not end it: {err}"
                )

        self.path.submit(
            goal.prompt,
            reply,
            mode_code=goal.mode,
            request_id=goal.request_id,
            image=goal.image,
            on_progress=feedback_publisher(goal_handle, time.monotonic()),
            cancel=cancel,
        )

    def cancel(self, goal_handle: Any) -> CancelResponse:
        """Cancel the goal's request; its result (``cancelled``, or the answer if it came
        first) still ends the goal."""
        with self._lock:
            event = self._cancels.get(bytes(goal_handle.goal_id.uuid))
        if event is not None:
            event.set()
        return CancelResponse.ACCEPT

    def finish(self, goal_handle: Any) -> Ground.Result:
        """The goal's end state from its result's status, and the result."""
        with self._lock:
            result = self._results.pop(bytes(goal_handle.goal_id.uuid))
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
