"""The /diagnostics entry built from a request path, without a node: keys, counts by status,
latency percentiles and the level."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from egm_ros.core.types import Status  # noqa: E402
from egm_ros.node.diagnostics import diagnostic_array  # noqa: E402
from egm_ros.node.frame_buffer import FrameBuffer  # noqa: E402
from egm_ros.node.request_path import PathSettings, RequestPath  # noqa: E402

pytestmark = pytest.mark.ros


def make_path() -> RequestPath:
    path = RequestPath("cam", FrameBuffer(5.0), PathSettings(), now=Time, warn=lambda m: None)
    path.frames.add(1, object())
    for status, ms in [(Status.OK, 100.0), (Status.OK, 300.0), (Status.TIMEOUT, 60000.0)]:
        path.stats.record(status, ms)
    return path


def test_values_count_requests_errors_by_status_and_latency() -> None:
    array = diagnostic_array(
        "/front/grounding_node", make_path(), "active", "openai", True, Time(sec=3)
    )
    (status,) = array.status
    values = {kv.key: kv.value for kv in status.values}
    assert status.name == "egm_ros: /front/grounding_node"
    assert status.level == DiagnosticStatus.OK and status.message == "active"
    assert values["backend"] == "openai" and values["engine_state"] == "active"
    assert (values["requests"], values["errors"], values["errors_timeout"]) == ("3", "1", "1")
    assert values["latency_ms_p50"] == "200.0"  # successes only
    assert values["buffered_frames"] == "1" and values["camera_info"] == "received"
    assert values["queue_depth"] == "0" and array.header.stamp.sec == 3


def test_a_node_that_does_not_serve_is_a_warning() -> None:
    array = diagnostic_array("/n", make_path(), "ready", "", False, Time())
    assert array.status[0].level == DiagnosticStatus.WARN
    assert {kv.key: kv.value for kv in array.status[0].values}["camera_info"] == "none"
