"""The node's ``/diagnostics`` entry: engine state, queue, request counts by status, latency
percentiles and inputs, from a :class:`~egm_ros.node.request_path.RequestPath`. Built here, in
one function, so what operators see is changed in one place; the node publishes it once a
second."""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from egm_ros.core.types import Status
from egm_ros.node.request_path import RequestPath


def diagnostic_values(
    path: RequestPath, engine_state: str, backend: str, camera_info: bool
) -> dict[str, Any]:
    """The key/value pairs, in the order they are shown."""
    queue = path.queue
    stats = path.stats
    values: dict[str, Any] = {
        "engine_state": engine_state,
        "backend": backend,
        "model": path.model_name,
        "queue_depth": queue.depth if queue else 0,
        "queue_high_water": queue.high_water if queue else 0,
        "in_flight": queue.in_flight if queue else 0,
        "requests": stats.total,
        "errors": stats.errors,
        "buffered_frames": len(path.frames),
        "camera_info": "received" if camera_info else "none",
    }
    values.update(
        {f"errors_{k}": v for k, v in sorted(stats.by_status.items()) if Status(k).is_error}
    )
    values.update({f"latency_ms_{k}": round(v, 1) for k, v in stats.percentiles().items()})
    return values


def diagnostic_array(
    node_name: str,
    path: RequestPath,
    engine_state: str,
    backend: str,
    camera_info: bool,
    stamp: Any,
) -> DiagnosticArray:
    """One status named after the node: OK while it serves (active), WARN otherwise."""
    values = diagnostic_values(path, engine_state, backend, camera_info)
    level = DiagnosticStatus.OK if engine_state == "active" else DiagnosticStatus.WARN
    status = DiagnosticStatus(
        level=level,
        name=f"egm_ros: {node_name}",
        message=engine_state,
        hardware_id=str(values["model"]),
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
