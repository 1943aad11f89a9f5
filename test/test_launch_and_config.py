"""The launch file cannot run here (no `launch` package in any reachable registry), so its own
``generate_launch_description`` runs on stand-ins for ``launch`` and ``launch_ros``, far enough
to give the Node it starts; the parameter list it gives is then applied to the real node as
launch_ros applies it. config/grounding.yaml documents exactly the node's parameters."""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from egm_ros.node.launch_args import ARGUMENTS, CAMERA_TOPICS
from egm_ros.node.parameters import PARAMETERS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "grounding.launch.py"


class _Declared:
    def __init__(self, name: str, default_value: str, description: str) -> None:
        self.name, self.default_value, self.description = name, default_value, description


class _Opaque:
    def __init__(self, function) -> None:
        self.function = function


class _Configuration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: dict[str, str]) -> str:
        return context[self.name]


class _Node:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


@pytest.fixture
def launched(monkeypatch, tmp_path):
    """``launched(**arguments)``: the keyword arguments of the Node the launch file starts,
    from its own ``generate_launch_description`` run on stand-ins for the ``launch`` package
    (the arguments given on the command line, each declared default where none was given,
    then the opaque function: what ``ros2 launch`` does)."""
    stand_ins = {
        "launch": _module("launch", LaunchDescription=list),
        "launch.actions": _module(
            "launch.actions", DeclareLaunchArgument=_Declared, OpaqueFunction=_Opaque
        ),
        "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=_Configuration),
        "launch_ros": _module("launch_ros"),
        "launch_ros.actions": _module("launch_ros.actions", Node=_Node),
        "ament_index_python": _module("ament_index_python"),
        "ament_index_python.packages": _module(
            "ament_index_python.packages",
            get_package_share_directory=lambda package: str(tmp_path / "share" / package),
        ),
    }
    for name, module in stand_ins.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("grounding_launch", LAUNCH)
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)

    def launch(**arguments: str) -> dict:
        entities = launch_file.generate_launch_description()
        context = dict(arguments)
        for entity in entities:
            if isinstance(entity, _Declared):
                context.setdefault(entity.name, entity.default_value)
        (opaque,) = [e for e in entities if isinstance(e, _Opaque)]
        (node,) = opaque.function(context)
        return node.kwargs

    return launch


def test_launch_passes_only_the_arguments_given(launched, tmp_path) -> None:
    # Issue 20, point 2: backend, model, base_url and mode were passed from their defaults
    # after params_file, so `backend: openai` in a user's YAML still gave `embedded`.
    node = launched()
    assert (node["package"], node["executable"]) == ("egm_ros", "grounding_node")
    default_yaml = str(tmp_path / "share" / "egm_ros" / "config" / "grounding.yaml")
    assert node["parameters"] == [default_yaml]
    node = launched(params_file="/robot/mine.yaml", mode="amodal", model="")
    assert node["parameters"] == ["/robot/mine.yaml", {"mode": "amodal"}]
    given = {"backend": "openai", "model": "m", "base_url": "http://h:1/v1", "mode": "visible"}
    assert launched(**given)["parameters"] == [default_yaml, given]
    assert set(given) <= set(PARAMETERS)


def test_launch_remaps_the_three_camera_topics_together(launched) -> None:
    # Issue 20, point 2: the default camera:=camera remapped to camera/image_raw, while
    # sim_camera publishes image_raw.
    assert launched()["remappings"] == []
    assert launched(camera="/front_camera/")["remappings"] == [
        ("image_raw", "/front_camera/image_raw"),
        ("image_raw/compressed", "/front_camera/image_raw/compressed"),
        ("camera_info", "/front_camera/camera_info"),
    ]
    assert launched(namespace="rear")["namespace"] == "rear"


def _node_values(parameters: list, names, tmp_path: Path) -> dict:
    """The values a real GroundingNode gets from a launch parameter list, applied as
    launch_ros applies it: one ``--params-file`` per entry, a dict written to a file under
    ``/**``, in order (a later file wins)."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context

    from egm_ros.node.grounding_node import GroundingNode

    args = ["--ros-args"]
    for i, entry in enumerate(parameters):
        if isinstance(entry, dict):
            path = tmp_path / f"launch_params_{i}.yaml"
            path.write_text(yaml.safe_dump({"/**": {"ros__parameters": entry}}))
            entry = str(path)
        args += ["--params-file", entry]
    context = Context()
    rclpy.init(args=args, context=context)
    try:
        node = GroundingNode(context=context)
        values = {name: node.get_parameter(name).value for name in names}
        node.destroy_node()
    finally:
        context.try_shutdown()
    return values


@pytest.mark.ros
def test_given_arguments_win_over_the_params_file_and_nothing_else_does(launched, tmp_path) -> None:
    mine = tmp_path / "mine.yaml"
    user = {"backend": "openai", "mode": "amodal", "model": "served", "autostart": False}
    mine.write_text(yaml.safe_dump({"/**": {"ros__parameters": user}}))
    plain = launched(params_file=str(mine))["parameters"]
    assert _node_values(plain, user, tmp_path) == user
    given = launched(params_file=str(mine), mode="visible", base_url="")["parameters"]
    assert _node_values(given, user, tmp_path) == {**user, "mode": "visible"}


@pytest.mark.ros
def test_depth_camera_remaps_the_depth_topics_and_turns_use_depth_on(launched, tmp_path) -> None:
    node = launched(camera="/camera/color", depth_camera="/camera/aligned_depth_to_color/")
    assert node["remappings"][3:] == [
        ("depth/image_raw", "/camera/aligned_depth_to_color/image_raw"),
        ("depth/camera_info", "/camera/aligned_depth_to_color/camera_info"),
    ]
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"autostart": False}}}))
    given = launched(params_file=str(mine), depth_camera="/d")["parameters"]
    assert _node_values(given, ["use_depth"], tmp_path) == {"use_depth": True}
    plain = launched(params_file=str(mine))
    assert _node_values(plain["parameters"], ["use_depth"], tmp_path) == {"use_depth": False}
    assert plain["remappings"] == []


def test_launch_arguments_cover_camera_backend_model_mode_and_params_file() -> None:
    names = set(ARGUMENTS)
    assert {"namespace", "camera", "backend", "model", "mode", "params_file"} <= names
    assert {"backend", "model", "base_url", "mode"} <= set(PARAMETERS)


@pytest.mark.ros
def test_sim_camera_publishes_where_the_default_camera_is() -> None:
    """With no ``camera`` the node reads its own namespace's topics: those sim_camera
    publishes in the same namespace."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context

    from egm_ros.node.sim_camera import SimCamera

    context = Context()
    rclpy.init(context=context)
    try:
        camera = SimCamera(context=context, namespace="/demo")
        topics = camera.get_publisher_names_and_types_by_node("sim_camera", "/demo")
        camera.destroy_node()
    finally:
        context.try_shutdown()
    assert {"/demo/image_raw", "/demo/camera_info"} <= {name for name, _ in topics}
    assert {"image_raw", "camera_info"} <= set(CAMERA_TOPICS)


def test_config_documents_exactly_the_node_parameters_with_their_defaults() -> None:
    config = yaml.safe_load((REPO / "config" / "grounding.yaml").read_text())
    params = config["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, param in PARAMETERS.items():
        assert params[name] == param.default, name
        assert type(params[name]) is param.type, name


def test_no_parameter_carries_a_secret() -> None:
    assert not [
        name
        for name in PARAMETERS
        if "key" in name or "token" in name.replace("max_new_tokens", "")
    ]


def test_every_launched_executable_is_installed_for_ros2_run() -> None:
    cmake = (REPO / "CMakeLists.txt").read_text()
    for launch_file in sorted((REPO / "launch").glob("*.launch.py")):
        tree = ast.parse(launch_file.read_text())
        compile(launch_file.read_text(), str(launch_file), "exec")
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Node":
                exe = next(
                    ast.literal_eval(k.value) for k in call.keywords if k.arg == "executable"
                )
                assert (REPO / "scripts" / exe).is_file(), exe
                assert f"scripts/{exe}" in cmake, exe
