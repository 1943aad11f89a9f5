"""`egm-demo` (what `make demo` runs) end to end on the embedded default: simulated camera ->
grounding node with EGM-Tiny -> scripted client; every command gets a result and an annotated
picture, and the results are real answers (status ok with boxes inside the frame). Run with
--depth: the camera's depth goes through the node's 3D step and each result is scored in 3D."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ml, pytest.mark.ros, pytest.mark.slow]


def test_demo_answers_every_command_and_writes_pictures(tmp_path: Path) -> None:
    exe = shutil.which("egm-demo", path=str(Path(sys.executable).parent))
    proc = subprocess.run(
        [exe, "--scenes", "1", "--timeout", "240", "--depth"],
        cwd=tmp_path,  # pictures go to out/demo there, as `make demo` writes them
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # The folder as given (the README's sample output has no machine path).
    assert "2 results (2 ok)" in proc.stdout and "annotated pictures in out/demo\n" in proc.stdout
    assert "Loading weights" not in proc.stderr  # no progress bar in the node's log
    out = tmp_path / "out" / "demo"
    pictures = sorted(p.name for p in out.glob("*.png"))
    assert len(pictures) == 2
    assert any("_visible_" in p for p in pictures) and any("_amodal_" in p for p in pictures)
    scored = [line for line in proc.stdout.splitlines() if line.startswith("      3D")]
    assert len(scored) == 2, proc.stdout[-3000:]  # one 3D line under each result
    summary = [line for line in proc.stdout.splitlines() if line.startswith("3D: ")]
    assert len(summary) == 1 and "results with 3D" in summary[0], proc.stdout[-3000:]
