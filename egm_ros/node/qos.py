"""Quality of service of the node's topics, and the warning when a publisher's QoS cannot
reach a subscription (the usual cause of "the node gives no output").

Images: ``best_effort`` by default (sensor data: the newest frame matters, a lost one does not;
a best-effort subscription also receives from reliable publishers). ``reliable`` receives only
from reliable publishers: where a camera driver publishes best effort, the middleware matches
nothing and rclpy's incompatible-QoS event fires, which the node turns into a warning naming the
topic and the parameter to change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import (
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

#: Commands are reliable and kept 100 deep: while a busy CPU starves the executor (an in-process
#: engine generating), a depth of 10 let DDS overwrite commands that never got a result.
COMMAND_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
#: Results are reliable: every command gets exactly one.
RESULT_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
#: Values of the ``image_reliability`` parameter.
IMAGE_RELIABILITY = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
}


def image_qos(reliability: str) -> QoSProfile:
    """The sensor-data profile (keep last 5, volatile) with the chosen reliability."""
    profile = QoSProfile(
        history=qos_profile_sensor_data.history,
        depth=qos_profile_sensor_data.depth,
        durability=qos_profile_sensor_data.durability,
        reliability=IMAGE_RELIABILITY[reliability],
    )
    return profile


def incompatible_qos_message(topic: str, policy: str, hint: str = "") -> str:
    """The warning line: the topic, the policy that does not match, and what to change."""
    text = (
        f"a publisher on {topic} offers QoS incompatible with this node's subscription "
        f"({policy}): no messages from it will arrive"
    )
    return f"{text}; {hint}" if hint else text


def warn_on_incompatible_qos(
    warn: Callable[[str], None], topic: str, hint: str = ""
) -> SubscriptionEventCallbacks:
    """Event callbacks for ``create_subscription``: rclpy's incompatible-QoS event becomes one
    warning naming ``topic`` (as the node resolved it) and ``hint``."""

    def on_incompatible(event: Any) -> None:
        try:
            policy = QoSPolicyKind(event.last_policy_kind).name
        except ValueError:
            policy = str(event.last_policy_kind)
        warn(incompatible_qos_message(topic, policy, hint))

    return SubscriptionEventCallbacks(incompatible_qos=on_incompatible)
