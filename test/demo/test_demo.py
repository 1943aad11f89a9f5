"""`egm-demo` end to end: simulated camera -> grounding node -> scripted client, with a real
engine (transformers on the project's random tiny model: its boxes are noise, so this checks the
loop, not accuracy): every command gets a result and an annotated picture."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ml, pytest.mark.ros, pytest.mark.slow]


def test_demo_answers_every_command_and_writes_pictures(tiny_model_dir, tmp_path: Path) -> None:
    exe = shutil.which("egm-demo", path=str(Path(sys.executable).parent))
    out = tmp_path / "demo"
    proc = subprocess.run(
        [
            exe,
            "--backend",
            "transformers",
            "--model",
            str(tiny_model_dir),
            "--scenes",
            "1",
            "--out",
            str(out),
            "--timeout",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 results" in proc.stdout and f"annotated pictures in {out}" in proc.stdout
    pictures = sorted(p.name for p in out.glob("*.png"))
    assert len(pictures) == 2
    assert any("_visible_" in p for p in pictures) and any("_amodal_" in p for p in pictures)


def test_demo_without_the_embedded_model_says_so(tmp_path: Path) -> None:
    from egm_ros.models.embedded import embedded_model_dir

    try:
        embedded_model_dir()
        pytest.skip("the embedded model ships in this checkout")
    except Exception:  # noqa: BLE001 - the GroundingError this test is about
        pass
    exe = shutil.which("egm-demo", path=str(Path(sys.executable).parent))
    proc = subprocess.run(
        [exe, "--out", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 3
    assert "embedded EGM-Tiny model is missing" in proc.stderr
