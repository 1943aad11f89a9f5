"""The scripted OpenAI-compatible server for tests; it lives with the developer tools
(:mod:`dev.scripted_server`) because the soak run (``dev.soak``) starts it as a process too.
Run on its own: ``python -m dev.scripted_server --port 8000``."""

from dev.scripted_server import (
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
