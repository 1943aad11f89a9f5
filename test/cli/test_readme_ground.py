"""The README's ``egm-ground`` examples as written (issue 20, point 6): every command parses and
picks the backend its text says, the embedded one runs on the picture in docs/, the server ones
run against a scripted server; the usage line names every flag."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from openai_server import ScriptedOpenAIServer
from PIL import Image

from egm_ros.cli.ground import build_parser, resolve_backend
from egm_ros.data.expressions import expressions
from egm_ros.data.scenes import generate_scene

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
EXE = shutil.which("egm-ground", path=str(Path(sys.executable).parent))
SCENE_SEED = 3  # docs/scene.png, as the README says


def readme_commands() -> list[list[str]]:
    """Every egm-ground command of the README: lines of ```bash blocks and inline code (the
    usage synopsis, with its [brackets], excepted)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [
        line
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if line.startswith("egm-ground ")
    ]
    spans = re.findall(r"`(egm-ground [^`]+)`", README)
    inline = [s for s in spans if '"' in s and "[" not in s]  # with a prompt: a command
    return [shlex.split(" ".join(command.split())) for command in lines + inline]


def test_every_readme_command_parses_with_the_backend_it_means() -> None:
    commands = readme_commands()
    assert len(commands) >= 6
    for command in commands:
        args = build_parser().parse_args(command[1:])
        assert resolve_backend(args) is None, command
        expected = "openai" if "--base-url" in command else "embedded"
        assert args.backend == expected, command


def test_the_usage_line_names_every_flag() -> None:
    (usage,) = [s for s in re.findall(r"`(egm-ground IMAGE PROMPT[^`]+)`", README)]
    flags = {
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option not in ("-h", "--help", "--verbose")
    }
    assert flags == set(re.findall(r"\[(-[-a-z]+)", usage))


def test_docs_scene_is_the_generators_scene_with_one_red_mug() -> None:
    scene = generate_scene(SCENE_SEED)
    assert np.array_equal(np.asarray(Image.open(REPO / "docs" / "scene.png")), scene.image)
    (mug,) = [e for e in expressions(scene) if e.text == "the red mug"]
    assert scene.objects[mug.target].visible_fraction < 0.9  # partly hidden: worth --amodal


def run_as_written(command: list[str], cwd: Path, base_url: str) -> subprocess.CompletedProcess:
    assert EXE, "egm-ground is not installed in the venv"
    args = [base_url if a.startswith("http://127.0.0.1:8000") else a for a in command[1:]]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # as the README advises on a shared CPU
    return subprocess.run(
        [EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.ml
@pytest.mark.slow
def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    """In a folder holding docs/scene.png and a user's scene.jpg; the server commands against
    a scripted server in place of vLLM (its URL is the only change)."""
    (tmp_path / "docs").mkdir()
    shutil.copy(REPO / "docs" / "scene.png", tmp_path / "docs")
    Image.open(REPO / "docs" / "scene.png").save(tmp_path / "scene.jpg")
    reply = '</think>```json\n[{"bbox_2d": [100, 100, 500, 500], "label": "mug"}]\n```'
    with ScriptedOpenAIServer(reply=lambda request: reply, model="EGM-8B") as server:
        for command in readme_commands():
            out = tmp_path / "annotated.png"
            out.unlink(missing_ok=True)
            proc = run_as_written(command, tmp_path, server.base_url)
            assert proc.returncode == 0, (command, proc.stderr)
            if "--json" in command:
                assert json.loads(proc.stdout)["status"] == "ok"
            else:
                assert proc.stdout.startswith("status: ok")
            if "--out" in command:
                assert out.is_file()
            if "--base-url" not in command:
                assert "EGM-Tiny" in proc.stdout + proc.stderr
                assert "Loading weights" not in proc.stderr  # no progress bar
