"""Fixtures of the node tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def harness():
    """Nodes spinning in a background executor of a private rclpy context, closed after."""
    from node_harness import Harness

    h = Harness()
    yield h
    h.close()
