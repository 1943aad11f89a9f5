"""A grounding node as its own process, as on a robot (the ``grounding_node`` executable), for
the benchmarks and the soak run: its command line from a parameter dict, its log file, its
resident memory (the one RSS reader of the developer tools; the node's own and that of the
processes it started, e.g. an in-process engine's worker process), and a clean stop (SIGINT, by
its own process id)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def ros_arg(value: object) -> str:
    """A parameter value as ``-p name:=value`` wants it (YAML: floats keep a dot)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def node_command(namespace: str, params: Mapping[str, object]) -> list[str]:
    """The command line of one grounding node in ``namespace`` with ``params``."""
    exe = Path(sys.executable).parent / "grounding_node"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "egm_ros.node.main"]
    cmd += ["--ros-args", "-r", f"__ns:={namespace}"]
    for name, value in params.items():
        if value == "":
            continue  # the node's default; `name:=` would be parsed as null
        cmd += ["-p", f"{name}:={ros_arg(value)}"]
    return cmd


def read_status_kb(pid: int, key: str) -> int | None:
    """A ``/proc/PID/status`` entry in kB (``VmHWM`` = peak RSS, ``VmRSS`` = now)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from ``/proc/*/stat``)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            children.append(int(entry.name))
    return children


def tree_status_kb(pid: int, key: str = "VmRSS") -> int | None:
    """A ``/proc/PID/status`` entry summed over ``pid`` and all its descendants, in kB (None
    when ``pid`` is gone). Pages two of them share count twice; the sum is for growth and
    size, and a sum of ``VmHWM`` is the sum of each process's own peak."""
    own = read_status_kb(pid, key)
    if own is None:
        return None
    return own + sum(tree_status_kb(child, key) or 0 for child in child_pids(pid))


class NodeProcess:
    """A ``grounding_node`` process, stopped with SIGINT (its clean shutdown) by its own id."""

    def __init__(
        self,
        namespace: str,
        params: Mapping[str, object],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                node_command(namespace, params),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except OSError:
            return ""

    def peak_rss_mb(self) -> float | None:
        """The peak resident memory of the node and of each process it started, summed."""
        kb = tree_status_kb(self.proc.pid, "VmHWM")
        return None if kb is None else round(kb / 1024, 1)

    def rss_kb(self) -> int | None:
        """The node's resident memory with that of the processes it started."""
        return tree_status_kb(self.proc.pid)

    def rss_mb(self) -> float | None:
        kb = self.rss_kb()
        return None if kb is None else round(kb / 1024, 1)

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
