"""The developer tools' node-process helper: node command lines and the RSS reader."""

from __future__ import annotations

import os

from dev.node_process import node_command, read_status_kb, ros_arg


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
