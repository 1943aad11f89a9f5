"""The developer tools' node-process helper: node command lines and the RSS reader."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from dev.node_process import child_pids, node_command, read_status_kb, ros_arg, tree_status_kb


def test_parameters_are_written_as_ros_args() -> None:
    assert [ros_arg(v) for v in (True, 600.0, 8, "x")] == ["true", "600.0", "8", "x"]
    cmd = node_command("/ns", {"backend": "openai", "model": "", "request_timeout": 5.0})
    assert cmd[cmd.index("--ros-args") :] == [
        "--ros-args",
        "-r",
        "__ns:=/ns",
        "-p",
        "backend:=openai",
        "-p",
        "request_timeout:=5.0",
    ]


def test_peak_rss_of_this_process_is_readable() -> None:
    assert read_status_kb(os.getpid(), "VmHWM") > 0
    assert read_status_kb(os.getpid(), "NoSuchKey") is None


def test_resident_memory_counts_the_processes_a_node_started() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while child.pid not in child_pids(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in child_pids(os.getpid())
        own, theirs = read_status_kb(os.getpid(), "VmRSS"), read_status_kb(child.pid, "VmRSS")
        total = tree_status_kb(os.getpid())
        # This process's own memory moves a little between the readings.
        assert total >= theirs + own * 0.9 and theirs > 1000
    finally:
        child.kill()
        child.wait()
