"""The launch file cannot run here (no `launch` package in any reachable registry), so check
what can be checked: it compiles, and every parameter it sets exists in the node and in
config/grounding.yaml, which in turn documents exactly the node's parameters."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from egm_ros.node.parameters import PARAMETERS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "grounding.launch.py"


def _launch_tree() -> ast.Module:
    source = LAUNCH.read_text()
    compile(source, str(LAUNCH), "exec")
    return ast.parse(source)


def _node_call(tree: ast.Module) -> ast.Call:
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"
    ]
    assert len(calls) == 1
    return calls[0]


def test_launch_sets_only_parameters_the_node_declares() -> None:
    node = _node_call(_launch_tree())
    kwargs = {k.arg: k.value for k in node.keywords}
    assert ast.literal_eval(kwargs["package"]) == "egm_ros"
    assert ast.literal_eval(kwargs["executable"]) == "grounding_node"
    dicts = [n for n in ast.walk(kwargs["parameters"]) if isinstance(n, ast.Dict)]
    set_by_launch = {ast.literal_eval(k) for d in dicts for k in d.keys}
    assert set_by_launch  # backend, model, base_url, mode
    assert set_by_launch <= set(PARAMETERS)
    config = yaml.safe_load((REPO / "config" / "grounding.yaml").read_text())
    assert set_by_launch <= set(config["/**"]["ros__parameters"])


def test_launch_arguments_cover_camera_backend_model_mode_and_params_file() -> None:
    tree = _launch_tree()
    arguments = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "ARGUMENTS"
    )
    names = set(ast.literal_eval(arguments.value))
    assert {"namespace", "camera", "backend", "model", "mode", "params_file"} <= names


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
