"""The test-only vision_msgs package (test/interfaces/vision_msgs: vision_msgs' documented
field layout; the real package is not installable from PyPI), built once into
build/test_vision_msgs/<digest of its sources>/ with the cmake steps the Makefile uses for
egm_ros's own interfaces, and the environment a Python process needs to import it.

It is never installed into the venv: only processes given :func:`vision_env` see it, so the
rest of the suite runs as on a machine without vision_msgs."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "test" / "interfaces" / "vision_msgs"
SOURCES = [*sorted(SOURCE.rglob("*.msg")), SOURCE / "CMakeLists.txt", SOURCE / "package.xml"]
FIX = REPO / "cmake" / "egm_ros_fix_wheel_includes.cmake"


def _digest() -> str:
    h = hashlib.sha256()
    for path in [*SOURCES, FIX]:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_vision_msgs() -> Path:
    """The install prefix of the built package (built now if it is not yet; about a minute)."""
    root = REPO / "build" / "test_vision_msgs"
    prefix = root / _digest() / "install"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:  # parallel test runs build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (prefix / ".built").exists():
            _build(prefix.parent / "build", prefix)
            (prefix / ".built").touch()
    return prefix


def _build(build: Path, prefix: Path) -> None:
    venv = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv))
    steps = [
        [
            "cmake",
            "-S",
            str(SOURCE),
            "-B",
            str(build),
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            f"-DCMAKE_PREFIX_PATH={venv}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DBUILD_TESTING=OFF",
        ],
        ["cmake", "--build", str(build), "-j2"],
        ["cmake", "--install", str(build)],
    ]
    for step in steps:
        proc = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(step[:2])} failed:\n{proc.stdout[-3000:]}{proc.stderr}")


def vision_env(prefix: Path) -> dict[str, str]:
    """The environment of a process that imports the built vision_msgs (its Python package
    and its typesupport libraries)."""
    site = next((prefix / "lib").glob("python3*/site-packages"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(prefix / "lib"), env.get("LD_LIBRARY_PATH", "")) if p
    )
    return env
