"""API keys come from the environment or a file and are redacted from messages."""

from __future__ import annotations

import logging

import pytest

from egm_ros.engines.secrets import load_api_key, redact


def test_env_first_then_file(tmp_path, monkeypatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-file\nignored\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("MY_KEY", "from-env")
    assert load_api_key("MY_KEY", str(key_file)) == "from-env"
    monkeypatch.delenv("MY_KEY")
    assert load_api_key("MY_KEY", str(key_file)) == "from-file"
    assert load_api_key("MY_KEY", None) is None


def test_readable_key_file_is_warned_about_without_the_key(tmp_path, caplog) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("topsecret")
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert load_api_key("UNSET_VAR_FOR_TEST", str(key_file)) == "topsecret"
    assert "readable by other users" in caplog.text and "topsecret" not in caplog.text


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="cannot read API key file"):
        load_api_key("UNSET_VAR_FOR_TEST", str(tmp_path / "nope"))


def test_redact() -> None:
    assert redact("token abc123 failed", "abc123") == "token *** failed"
    assert redact("nothing", None) == "nothing"
