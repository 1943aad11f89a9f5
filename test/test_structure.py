"""The package's shape, checked so it stays that way: layers import only downward (nothing in
the ROS-free core imports an engine, the node or a tool), no module of egm_ros/ is over 400
lines and no function over 60 (one concern per module, read without scrolling)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "egm_ros"
#: Layer of each subpackage: a module may import its own layer's package and lower layers only.
LAYERS = {
    "core": 0,
    "data": 1,
    "models": 1,
    "engines": 2,
    "msg": 2,  # generated interfaces
    "action": 2,
    "node": 3,
    "cli": 3,
    "training": 4,
    "demo": 4,
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imported_subpackages(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("egm_ros.")}
    return found


def test_every_subpackage_has_a_layer() -> None:
    subpackages = {p.relative_to(PACKAGE).parts[0] for p in MODULES if p.parent != PACKAGE}
    assert subpackages <= set(LAYERS), subpackages - set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_only_downward(path: Path) -> None:
    if path.parent == PACKAGE:
        return  # egm_ros/__init__.py
    own = path.relative_to(PACKAGE).parts[0]
    upward = {
        name
        for name in _imported_subpackages(ast.parse(path.read_text()))
        if name != own and LAYERS.get(name, 99) >= LAYERS[own]
    }
    assert not upward, f"{own} (layer {LAYERS[own]}) imports {sorted(upward)}"


def test_the_core_imports_nothing_else_of_the_package() -> None:
    for path in (PACKAGE / "core").rglob("*.py"):
        assert _imported_subpackages(ast.parse(path.read_text())) <= {"core"}, path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_short(path: Path) -> None:
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{source.count(chr(10))} lines"
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_the_checks_see_what_they_look_for() -> None:
    tree = ast.parse("from egm_ros.engines import create_engine\nimport egm_ros.node.main\n")
    assert _imported_subpackages(tree) == {"engines", "node"}
    assert _imported_subpackages(ast.parse("from .x import y\nimport os\n")) == set()


def test_test_files_have_unique_names() -> None:
    """pytest imports test files by their base name (no __init__.py here): two test_x.py in
    different folders stop the whole run at collection."""
    names = [p.name for p in Path(__file__).resolve().parent.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
