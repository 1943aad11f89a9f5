"""The node's ``/diagnostics`` entry: engine state, queue, request counts by status, latency
percentiles and inputs, from a :class:`~egm_ros.node.request_path.RequestPath`. Built here, in
one function, so what operators see is changed in one place; the node publishes it once a
second, from its start (an unconfigured node says why).

The level follows what users of the node see:

- ERROR: the node is not configured (the message says why, e.g. a parameter refused at
  start-up), or the engine is unavailable (its last request, or the check at configure, found
  no engine to talk to);
- WARN: configured but not active, or the engine's last request failed (engine error,
  unusable answer, timeout); the message carries that error;
- OK: active, and the engine's last word was an answer (or nothing has been asked yet).
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from egm_ros.core.types import Status
from egm_ros.node.request_path import RequestPath


def diagnostic_values(
    path: RequestPath, engine_state: str, backend: str, camera_info: bool, model: str = ""
) -> dict[str, Any]:
    """The key/value pairs, in the order they are shown. ``backend`` and ``model`` as the user
    configured them (``model`` '': the engine's own name for its default)."""
    queue = path.queue
    stats = path.stats
    health = stats.engine_health
    values: dict[str, Any] = {
        "engine_state": engine_state,
        "backend": backend,
        "model": model or path.model_name,
        "queue_depth": queue.depth if queue else 0,
        "queue_size": path.settings.queue_size,
        "queue_high_water": queue.high_water if queue else 0,
        "in_flight": queue.in_flight if queue else 0,
        "requests": stats.total,
        "errors": stats.errors,
        "last_engine_status": health[0].value if health else "none",
        "buffered_frames": len(path.frames),
        "frames_received": path.frames.received,
        "camera_info": "received" if camera_info else "none",
    }
    if health is not None and health[0].is_error:
        values["last_error"] = health[1]
    values.update(
        {f"errors_{k}": v for k, v in sorted(stats.by_status.items()) if Status(k).is_error}
    )
    values.update({f"latency_ms_{k}": round(v, 1) for k, v in stats.percentiles().items()})
    return values


def level_and_message(engine_state: str, health: tuple[Status, str] | None) -> tuple[bytes, str]:
    """The level and the one-line message (see the module's docstring)."""
    if engine_state not in ("ready", "active"):
        reason = engine_state.removeprefix("failed: ")
        return DiagnosticStatus.ERROR, (
            "unconfigured" if reason == "unconfigured" else f"unconfigured: {reason}"
        )
    if health is not None and health[0] is Status.ENGINE_UNAVAILABLE:
        return DiagnosticStatus.ERROR, f"engine unavailable: {health[1]}"
    if engine_state != "active":
        return DiagnosticStatus.WARN, f"{engine_state} (configured, not active)"
    if health is not None and health[0].is_error:
        return DiagnosticStatus.WARN, f"last request failed: {health[0].value}: {health[1]}"
    return DiagnosticStatus.OK, engine_state


def diagnostic_array(
    node_name: str,
    path: RequestPath,
    engine_state: str,
    backend: str,
    camera_info: bool,
    stamp: Any,
    model: str = "",
) -> DiagnosticArray:
    """One status named after the node, at the level :func:`level_and_message` gives."""
    values = diagnostic_values(path, engine_state, backend, camera_info, model)
    level, message = level_and_message(engine_state, path.stats.engine_health)
    status = DiagnosticStatus(
        level=level,
        name=f"egm_ros: {node_name}",
        message=message,
        hardware_id=str(values["model"]),
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
