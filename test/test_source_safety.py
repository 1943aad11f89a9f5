"""No shell, eval, exec or pickle on any input path: every module of egm_ros/ is scanned with
``ast`` for the calls and imports that run text or bytes as code. A construct that is needed
off the input paths is listed in EXEMPT with the reason; an exemption that no longer matches
anything fails, so the list cannot go stale. The developer tools that start processes (soak
run, scripted server, benchmarks) live outside the package, in dev/, and need none."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "egm_ros"

#: (path relative to egm_ros/, finding) -> why it is not on an input path.
EXEMPT: dict[tuple[str, str], str] = {}

_BANNED_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}
_BANNED_MODULES = {"pickle", "cPickle", "dill", "shelve", "marshal", "subprocess", "commands"}
_BANNED_ATTRS = {
    ("os", "system"),
    ("os", "popen"),
    ("os", "execv"),
    ("os", "execvp"),
    ("os", "spawnl"),
    ("pickle", "load"),
    ("pickle", "loads"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("np", "load"),
    ("numpy", "load"),
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def findings(source: str) -> list[tuple[int, str]]:
    """(line, what) for each construct that runs input as code or through a shell."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            for name in names:
                if name.split(".")[0] in _BANNED_MODULES:
                    found.append((node.lineno, f"import {name.split('.')[0]}"))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if isinstance(node.func, ast.Name) and name in _BANNED_CALLS:
            found.append((node.lineno, f"{name}()"))
        parts = tuple(name.rsplit(".", 1))
        if len(parts) == 2 and parts in _BANNED_ATTRS:
            if parts[0] in ("np", "numpy") and not _is_true(_keyword(node, "allow_pickle")):
                continue  # np.load refuses pickles unless allow_pickle=True
            found.append((node.lineno, f"{name}()"))
        if _is_true(_keyword(node, "shell")):
            found.append((node.lineno, f"{name}(shell=True)"))
        if _is_true(_keyword(node, "trust_remote_code")):
            found.append((node.lineno, "trust_remote_code=True"))
        if name.endswith("torch.load") or name == "load" and _keyword(node, "weights_only"):
            if not _is_true(_keyword(node, "weights_only")):
                found.append((node.lineno, "torch.load without weights_only=True"))
    return found


def scan() -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for line, what in findings(path.read_text(encoding="utf-8")):
            out.setdefault((rel, what), []).append(line)
    return out


def test_no_eval_exec_pickle_or_shell_in_the_package() -> None:
    found = scan()
    unexpected = {f"{path}:{lines}: {what}" for (path, what), lines in found.items()} - {
        f"{path}:{found[(path, what)]}: {what}" for path, what in EXEMPT if (path, what) in found
    }
    assert not unexpected, sorted(unexpected)


def test_every_exemption_still_matches_something() -> None:
    stale = [key for key in EXEMPT if key not in scan()]
    assert not stale, f"remove these exemptions: {stale}"


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("eval(text)", "eval()"),
        ("exec(code)", "exec()"),
        ("import pickle", "import pickle"),
        ("from pickle import loads", "import pickle"),
        ("import subprocess", "import subprocess"),
        ("os.system(cmd)", "os.system()"),
        ("x.run(cmd, shell=True)", "x.run(shell=True)"),
        ("yaml.load(f)", "yaml.load()"),
        ("np.load(f, allow_pickle=True)", "np.load()"),
        ("torch.load(path)", "torch.load without weights_only=True"),
        ("torch.load(path, weights_only=False)", "torch.load without weights_only=True"),
        ("AutoModel.from_pretrained(m, trust_remote_code=True)", "trust_remote_code=True"),
    ],
)
def test_the_scanner_sees_each_construct(source: str, what: str) -> None:
    assert what in [w for _, w in findings(source)]


@pytest.mark.parametrize(
    "source",
    [
        "model.eval()",
        "torch.load(path, weights_only=True)",
        "yaml.safe_load(f)",
        "np.load(f)",
        "json.loads(text)",
        "AutoModel.from_pretrained(m, trust_remote_code=False)",
    ],
)
def test_the_scanner_passes_safe_code(source: str) -> None:
    assert findings(source) == []
