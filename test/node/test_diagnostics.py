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
    for status, ms in [(Status.TIMEOUT, 60000.0), (Status.OK, 100.0), (Status.OK, 300.0)]:
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
    assert values["frames_received"] == "1"
    assert values["queue_depth"] == "0" and array.header.stamp.sec == 3


def test_a_configured_node_that_is_not_active_is_a_warning() -> None:
    array = diagnostic_array("/n", make_path(), "ready", "", False, Time())
    assert array.status[0].level == DiagnosticStatus.WARN
    assert array.status[0].message == "ready (configured, not active)"
    assert {kv.key: kv.value for kv in array.status[0].values}["camera_info"] == "none"


def level(engine_state: str, *records: tuple[Status, str]) -> tuple[bytes, str]:
    path = make_path()
    for status, message in records:
        path.stats.record(status, 10.0, message)
    (status,) = diagnostic_array("/n", path, engine_state, "openai", True, Time()).status
    return status.level, status.message


def test_an_unconfigured_node_is_an_error_that_says_why() -> None:
    assert level("unconfigured") == (DiagnosticStatus.ERROR, "unconfigured")
    failed = "failed: parameter mode: 'sideways' is not allowed; one of 'visible', 'amodal'"
    assert level(failed) == (DiagnosticStatus.ERROR, "unconfigured: " + failed[8:])


def test_the_level_follows_the_engines_last_word() -> None:
    down = (Status.ENGINE_UNAVAILABLE, "connection refused")
    broken = (Status.ENGINE_ERROR, "HTTP 500")
    assert level("active", down) == (
        DiagnosticStatus.ERROR,
        "engine unavailable: connection refused",
    )
    assert level("ready", down)[0] == DiagnosticStatus.ERROR
    assert level("active", down, broken) == (
        DiagnosticStatus.WARN,
        "last request failed: engine_error: HTTP 500",
    )
    assert level("active", (Status.MALFORMED_OUTPUT, "no box"))[0] == DiagnosticStatus.WARN
    assert level("active", (Status.TIMEOUT, "slow"))[0] == DiagnosticStatus.WARN
    assert level("active", down, broken, (Status.NOT_FOUND, "")) == (DiagnosticStatus.OK, "active")
    # Requests refused before the engine say nothing about it.
    for status in (Status.INVALID_INPUT, Status.NO_FRAME, Status.BUSY, Status.CANCELLED):
        assert level("active", broken, (status, "x"))[0] == DiagnosticStatus.WARN


def test_backend_and_model_are_named_as_configured() -> None:
    path = make_path()
    array = diagnostic_array("/n", path, "active", "embedded", True, Time(), model="my/model")
    values = {kv.key: kv.value for kv in array.status[0].values}
    assert (values["backend"], values["model"]) == ("embedded", "my/model")
    assert array.status[0].hardware_id == "my/model"
