"""The engine interface, re-exported for code written against its old place: it lives in
:mod:`egm_ros.core.engine` (the core uses it, and the core imports nothing above itself)."""

from egm_ros.core.engine import (
    Engine,
    EngineOutput,
    EngineRequest,
    ProgressCallback,
    SamplingParams,
    StopCheck,
)

__all__ = [
    "Engine",
    "EngineOutput",
    "EngineRequest",
    "ProgressCallback",
    "SamplingParams",
    "StopCheck",
]
