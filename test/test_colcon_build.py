"""`colcon build` of the package in a temporary workspace installs what `ros2 launch` and
`ros2 run` look for, and the installed Python package (core + generated interfaces) imports
from the install space alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
SKIP = {
    ".git",
    ".venv",
    "build",
    "install",
    "log",
    "out",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
}

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    colcon = shutil.which("colcon", path=str(VENV / "bin"))
    if colcon is None:
        pytest.fail("colcon is not installed in the venv (requirements/dev.txt)")
    workspace = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, workspace / "src" / "egm_ros", ignore=lambda d, names: SKIP & set(names))
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = str(VENV)
    env["CMAKE_PREFIX_PATH"] = str(VENV)
    proc = subprocess.run(
        [
            colcon,
            "build",
            "--event-handlers",
            "console_cohesion-",
            "--cmake-args",
            f"-DPython3_EXECUTABLE={VENV / 'bin' / 'python'}",
            "-DBUILD_TESTING=OFF",
        ],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workspace / "install" / "egm_ros"


def test_launch_config_and_executable_are_where_ros2_looks(colcon_install: Path) -> None:
    share = colcon_install / "share" / "egm_ros"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "grounding.launch.py").is_file()
    assert (share / "config" / "grounding.yaml").is_file()
    # ros2 run <pkg> <exe> looks in lib/<pkg>; ros2 launch finds the package via the index.
    node_exe = colcon_install / "lib" / "egm_ros" / "grounding_node"
    assert node_exe.is_file() and os.access(node_exe, os.X_OK)
    index = colcon_install / "share" / "ament_index" / "resource_index" / "packages" / "egm_ros"
    assert index.is_file()


def test_installed_python_package_imports_from_the_install_space(colcon_install: Path) -> None:
    site = next((colcon_install / "lib").glob("python3*/site-packages"))
    env = dict(os.environ)
    # What colcon's setup.bash sets for this package.
    env["PYTHONPATH"] = str(site)
    env["LD_LIBRARY_PATH"] = f"{colcon_install / 'lib'}:{env.get('LD_LIBRARY_PATH', '')}"
    code = (
        "import egm_ros.core.types as t, egm_ros.msg as m, egm_ros.action as a\n"
        "print(t.__file__); print(m.__file__); print(a.Ground.Goal().mode)\n"
        "print(m.GroundingResult.STATUS_BUSY == t.Status.BUSY.code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    core_file, msg_file, mode, same = proc.stdout.split()
    assert core_file.startswith(str(site)), core_file
    assert msg_file.startswith(str(site)), msg_file
    assert mode == "0" and same == "True"
