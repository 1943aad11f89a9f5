"""The scripted OpenAI-compatible server for tests; it lives in the package
(:mod:`egm_ros.tools.scripted_server`) because the soak run (``egm_ros.tools.soak``) starts it
as a process too. Run on its own: ``python -m egm_ros.tools.scripted_server --port 8000``."""

from egm_ros.tools.scripted_server import (
    DEFAULT_ANSWER,
    GARBAGE_ANSWER,
    TRUNCATED_ANSWER,
    ScriptedOpenAIServer,
    ServerProcess,
    split_tokens,
)

__all__ = [
    "DEFAULT_ANSWER",
    "GARBAGE_ANSWER",
    "TRUNCATED_ANSWER",
    "ScriptedOpenAIServer",
    "ServerProcess",
    "split_tokens",
]
