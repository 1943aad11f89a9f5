"""Shared test set-up: ROS 2 stays on loopback in a per-run domain, and helpers in
test/support/ are importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before anything imports rclpy: DDS discovery on this machine only, and a domain of our own so
# parallel runs (or a developer's other nodes) do not see each other.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent / "support"))
