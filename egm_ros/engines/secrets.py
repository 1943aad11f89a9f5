"""API keys for remote engines: from the environment or a file, never from a ROS parameter
or a command-line flag, never logged."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def load_api_key(env_var: str = "EGM_API_KEY", key_file: str | None = None) -> str | None:
    """The key from ``env_var`` if set, else the first line of ``key_file``; ``None`` when
    neither gives one. A key file others can read is used but warned about (by path only)."""
    value = os.environ.get(env_var, "").strip() if env_var else ""
    if value:
        return value
    if not key_file:
        return None
    path = Path(key_file).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"cannot read API key file {path}: {err.strerror}") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("API key file %s is readable by other users; chmod 600 it", path)
    lines = text.strip().splitlines()
    return lines[0].strip() if lines and lines[0].strip() else None


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced, for log lines and errors."""
    if not secret or secret == "EMPTY":
        return text
    return text.replace(secret, "***")
