"""The README's "Building in a ROS 2 Jazzy workspace", step by step as far as it runs here (the
ROS 2 Jazzy wheels of the venv stand in for /opt/ros/jazzy; rosdep and `ros2 launch` cannot run):

1. rosdep: every import of the package is a dependency in package.xml (a ROS package, or a
   rosdep key checked in ros/rosdistro) or a library of a backend's requirements file;
2. pip: this environment meets the requirements files of the backends it runs;
3. `colcon build` in a workspace, with what sourcing /opt/ros/jazzy/setup.bash sets;
4. `source install/setup.bash`: the Python package and interfaces import from the install space;
5. launch: the installed `grounding_node` with the installed config/grounding.yaml (the default
   backend, the embedded model) reports `engine ready`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from egm_ros.engines import BACKENDS

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
#: package.xml's rosdep keys for Python libraries (ros/rosdistro rosdep/python.yaml, checked at
#: 8468e88, 2026-08-22) -> the module the code imports.
ROSDEP_KEYS = {
    "python3-numpy": "numpy",
    "python3-pil": "PIL",
    "python3-opencv": "cv2",
    "python3-yaml": "yaml",
    "python3-httpx": "httpx",
    "python3-openai-pip": "openai",
}
#: ROS packages with a rosdep key on Jazzy that no registry reachable here provides.
NOT_INSTALLABLE_HERE = {"launch", "launch_ros", "vision_msgs"}
#: Module -> distribution, for the backends' libraries.
DISTRIBUTIONS = {"PIL": "pillow", "cv2": "opencv-python-headless", "yaml": "pyyaml"}


def _declared() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    tags = ("depend", "exec_depend", "build_depend", "buildtool_depend")
    return {element.text for tag in tags for element in root.iter(tag)}


def _imports() -> set[str]:
    """Top-level modules imported anywhere in the installed package and the launch files."""
    files = [*(REPO / "egm_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]
    names: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"egm_ros", "__future__"}


def _requirements(name: str) -> list[Requirement]:
    """The requirements of requirements/<name>, with those of the files it includes (-r)."""
    out: list[Requirement] = []
    for line in (REPO / "requirements" / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out += _requirements(line[3:].strip())
        elif line:
            out.append(Requirement(line))
    return out


def test_every_import_is_a_package_xml_dependency_or_a_backend_library() -> None:
    declared = _declared()
    ros_packages = {
        p.name for p in (VENV / "share" / "ament_index" / "resource_index" / "packages").iterdir()
    } | NOT_INSTALLABLE_HERE
    backend_libraries = {
        canonicalize_name(r.name) for backend in BACKENDS for r in _requirements(f"{backend}.txt")
    }
    missing = []
    for module in sorted(_imports()):
        if module in ros_packages:
            ok = module in declared
        elif module in ROSDEP_KEYS.values():
            ok = any(ROSDEP_KEYS[k] == module for k in declared if k in ROSDEP_KEYS)
        else:
            ok = canonicalize_name(DISTRIBUTIONS.get(module, module)) in backend_libraries
        if not ok:
            missing.append(module)
    assert not missing, f"imported but neither in package.xml nor a requirements file: {missing}"
    assert set(ROSDEP_KEYS) <= declared


def test_the_core_requirements_are_what_rosdep_installs() -> None:
    """requirements/core.txt (what a plain pip install needs) names the same libraries as
    package.xml's rosdep keys (what a ROS install gets from rosdep)."""
    core = {canonicalize_name(r.name) for r in _requirements("core.txt")}
    keys = {canonicalize_name(DISTRIBUTIONS.get(m, m)) for m in ROSDEP_KEYS.values()}
    assert core == keys


def test_each_backend_has_a_requirements_file_and_this_environment_meets_those_it_runs() -> None:
    for backend in BACKENDS:
        assert _requirements(f"{backend}.txt"), backend
    unmet = []
    for backend in ("openai", "embedded", "transformers"):
        for requirement in _requirements(f"{backend}.txt"):
            try:
                version = importlib.metadata.version(requirement.name)
            except importlib.metadata.PackageNotFoundError:
                version = None
            if version is None or not requirement.specifier.contains(version, prereleases=True):
                unmet.append(f"{backend}: {requirement} (installed: {version})")
    assert not unmet
    (numpy,) = _requirements("jazzy-constraints.txt")
    assert numpy.name == "numpy" and not numpy.specifier.contains("2.0.0")


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    colcon = shutil.which("colcon", path=str(VENV / "bin"))
    if colcon is None:
        pytest.fail("colcon is not installed in the venv (requirements/dev.txt)")
    workspace = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, workspace / "src" / "egm_ros", ignore=lambda d, names: SKIP & set(names))
    env = dict(os.environ)
    # What `source /opt/ros/jazzy/setup.bash` sets; the venv is the ROS prefix here.
    env["AMENT_PREFIX_PATH"] = str(VENV)
    env["CMAKE_PREFIX_PATH"] = str(VENV)
    proc = subprocess.run(
        [
            colcon,
            "build",
            "--packages-select",
            "egm_ros",
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


def _sourced(install: Path, command: str) -> tuple[list[str], dict[str, str]]:
    """``bash -c 'source install/setup.bash && COMMAND'`` from /, with nothing of the checkout
    on the paths: the environment the README's last steps give."""
    fresh = ("PYTHONPATH", "LD_LIBRARY_PATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE")  # a new shell
    env = {k: v for k, v in os.environ.items() if k not in fresh}
    env["PATH"] = f"{VENV / 'bin'}:{env['PATH']}"  # the activated venv
    setup = install.parent / "setup.bash"
    return ["bash", "-c", f"source {setup} && {command}"], env


@pytest.mark.ros
@pytest.mark.slow
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


@pytest.mark.ros
@pytest.mark.slow
def test_after_sourcing_the_package_imports_from_the_install_space(colcon_install: Path) -> None:
    site = next((colcon_install / "lib").glob("python3*/site-packages"))
    code = (
        "import egm_ros.core.types as t, egm_ros.msg as m, egm_ros.action as a\n"
        "import egm_ros.node.launch_args\n"
        "print(t.__file__); print(m.__file__); print(a.Ground.Goal().mode)\n"
        "print(m.GroundingResult.STATUS_BUSY == t.Status.BUSY.code)\n"
    )
    command, env = _sourced(colcon_install, f"python -c {shlex.quote(code)}")
    proc = subprocess.run(command, env=env, cwd="/", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    core_file, msg_file, mode, same = proc.stdout.split()
    assert core_file.startswith(str(site)), core_file
    assert msg_file.startswith(str(site)), msg_file
    assert mode == "0" and same == "True"


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.ml
def test_the_installed_node_starts_as_the_launch_file_starts_it(colcon_install: Path) -> None:
    """The launch file with no arguments runs lib/egm_ros/grounding_node with the package's
    config/grounding.yaml and nothing else (test_launch_and_config.py checks that list)."""
    exe = colcon_install / "lib" / "egm_ros" / "grounding_node"
    config = colcon_install / "share" / "egm_ros" / "config" / "grounding.yaml"
    command, env = _sourced(colcon_install, f"exec {exe} --ros-args --params-file {config}")
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen(
        command, env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    deadline = time.monotonic() + 300
    try:
        for line in proc.stdout:
            lines.append(line)
            if "engine ready" in line or "ERROR" in line or time.monotonic() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    text = "".join(lines) + out
    assert "engine ready: embedded EGM-Tiny (embedded)" in text, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
