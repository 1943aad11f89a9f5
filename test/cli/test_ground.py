"""`egm-ground` end to end: the installed console script, the OpenAI-compatible engine and a
scripted OpenAI-compatible server on loopback that answers in each family's format."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from openai_server import ScriptedOpenAIServer, ServerProcess
from PIL import Image

EXE = shutil.which("egm-ground", path=str(Path(sys.executable).parent))

# One target at x 100..500, y 50..250 in a 1000 x 500 image, as each family writes it.
# qwen2_5_vl answers in pixels of the image its processor resized: 1000 x 500 -> 1008 x 504.
ANSWERS = {
    "qwen3_vl": '```json\n[{"bbox_2d": [100, 100, 500, 500], "label": "red mug"}]\n```',
    "qwen2_5_vl": '```json\n[{"bbox_2d": [100.8, 50.4, 504, 252], "label": "red mug"}]\n```',
    "internvl3": "<ref>red mug</ref><box>[[100, 100, 500, 500]]</box>",
}


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    rgb = np.full((500, 1000, 3), 200, np.uint8)
    rgb[50:250, 100:500] = (220, 30, 30)
    Image.fromarray(rgb).save(path)
    return path


def run_cli(
    *args: str, timeout: float = 60, env: dict | None = None
) -> subprocess.CompletedProcess:
    """egm-ground; the OpenAI-compatible backend unless the test names one."""
    assert EXE, "egm-ground is not installed in the venv"
    backend = [] if "--backend" in args else ["--backend", "openai"]
    return subprocess.run(
        [EXE, *args, *backend], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.parametrize("family", sorted(ANSWERS))
def test_each_family_gives_source_pixel_boxes(family: str, image_file: Path) -> None:
    reply = f"The red mug is left of the bowl.</think>\n{ANSWERS[family]}"
    with ScriptedOpenAIServer(reply=lambda request: reply, model=f"m-{family}") as server:
        proc = run_cli(
            str(image_file),
            "the red mug",
            "--base-url",
            server.base_url,
            "--family",
            family,
            "--json",
        )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "ok"
    assert out["objects"][0]["visible"] == pytest.approx([100, 50, 500, 250], abs=0.2)
    assert out["objects"][0]["label"] == "red mug"
    assert "amodal" not in out["objects"][0]
    assert out["reasoning"].startswith("The red mug")
    assert out["tokens"] > 0 and out["latency_ms"] > 0
    assert out["model"] == f"m-{family}"


def test_amodal_json_has_both_boxes_and_the_server_saw_two_queries(image_file: Path) -> None:
    def reply(request: dict) -> str:
        amodal = "amodal" in json.dumps(request["messages"])
        box = [100, 100, 500, 900] if amodal else [100, 100, 500, 500]
        return f'Behind the box.</think>```json\n[{{"bbox_2d": {box}}}]\n```'

    with ScriptedOpenAIServer(reply=reply, model="egm") as server:
        proc = run_cli(
            str(image_file),
            "the hidden mug",
            "--amodal",
            "--base-url",
            server.base_url,
            "--family",
            "qwen3_vl",
            "--json",
        )
        seen = len(server.requests)
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)["objects"][0]
    assert obj["visible"] == pytest.approx([100, 50, 500, 250])
    assert obj["amodal"] == pytest.approx([100, 50, 500, 450])
    assert seen == 2


def test_not_found_exits_zero(image_file: Path) -> None:
    reply = "There is no mug in this image.</think>\n```json\n[]\n```"
    with ScriptedOpenAIServer(reply=lambda request: reply, model="egm") as server:
        proc = run_cli(str(image_file), "the mug", "--base-url", server.base_url, "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["status"] == "not_found"


def test_readable_summary_and_annotated_png(image_file: Path, tmp_path: Path) -> None:
    reply = '</think>```json\n[{"bbox_2d": [100, 100, 500, 500], "label": "mug"}]\n```'
    out_png = tmp_path / "annotated.png"
    with ScriptedOpenAIServer(reply=lambda request: reply, model="egm") as server:
        proc = run_cli(
            str(image_file), "the mug", "--base-url", server.base_url, "--out", str(out_png)
        )
    assert proc.returncode == 0, proc.stderr
    assert "status: ok" in proc.stdout
    assert "[100.0, 50.0, 500.0, 250.0]" in proc.stdout
    drawn = np.asarray(Image.open(out_png).convert("RGB"))
    assert drawn.shape == (500, 1000, 3)


@pytest.mark.parametrize(
    ("args", "code", "status"),
    [
        (["--base-url", "http://127.0.0.1:9/v1", "--timeout", "5"], 3, "engine_unavailable"),
        (["--base-url", "ftp://example/v1"], 2, "invalid_input"),
    ],
    ids=["server-down", "bad-url"],
)
def test_engine_errors_are_one_line_and_non_zero(image_file: Path, args, code, status) -> None:
    proc = run_cli(str(image_file), "the mug", "--model", "egm", "--json", *args)
    assert proc.returncode == code, proc.stderr
    assert json.loads(proc.stdout)["status"] == status
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("egm-ground: error:")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("max_new_tokens", ["1024", "24"], ids=["stream-ends", "token-limit"])
def test_reasoning_cut_off_before_its_end_is_malformed_not_ok(
    image_file: Path, max_new_tokens: str
) -> None:
    # Issue 16, defect 1, as a user saw it: the stream ends inside the reasoning (no </think>)
    # after a number quad; it used to exit 0 with status ok and the reasoning's numbers as box.
    reasoning = (
        "The red box is on the left, about [156, 312, 406, 688], and the blue one covers its"
        " lower half, so I should look again at the left edge of the table before I answer"
    )
    with ScriptedOpenAIServer(reply=lambda request: reasoning, model="egm") as server:
        proc = run_cli(
            str(image_file),
            "the red box",
            "--base-url",
            server.base_url,
            "--max-new-tokens",
            max_new_tokens,
            "--json",
        )
    assert_one_error_line(proc, 1, "malformed_output")
    out = json.loads(proc.stdout)
    assert out["objects"] == []
    assert "max_new_tokens" in proc.stderr


def test_missing_image_and_empty_prompt_are_invalid_input(image_file: Path) -> None:
    missing = run_cli("/nonexistent.png", "the mug", "--json")
    assert missing.returncode == 2
    assert json.loads(missing.stdout)["status"] == "invalid_input"
    with ScriptedOpenAIServer(reply=lambda request: "x", model="egm") as server:
        empty = run_cli(str(image_file), "  ", "--base-url", server.base_url)
    assert empty.returncode == 2 and "invalid_input" in empty.stderr
    assert empty.stdout == ""


# Each engine fault with the server as its own process on loopback: one line on stderr, the
# status in the JSON, the exit code, and an end within --timeout plus the bounded retries (the
# hang detector is subprocess.run's limit, ten times --timeout); after the server is started
# again the next call succeeds.
SERVER_FAULTS = [
    # (--fault of the scripted server, exit code, status)
    ("hang", 4, "timeout"),
    ("slow", 4, "timeout"),
    ("http500", 1, "engine_error"),
    ("garbage", 1, "engine_error"),
    ("drop", 3, "engine_unavailable"),
    ("truncated", 1, "malformed_output"),
]


def assert_one_error_line(proc: subprocess.CompletedProcess, code: int, status: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert json.loads(proc.stdout)["status"] == status
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"egm-ground: error: {status}: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("fault", "code", "status"), SERVER_FAULTS, ids=[f[0] for f in SERVER_FAULTS]
)
def test_each_server_fault_is_one_line_and_an_exit_code(
    image_file: Path, fault: str, code: int, status: str
) -> None:
    with ServerProcess("--fault", fault, "--hang-seconds", "120") as server:
        args = (str(image_file), "the mug", "--base-url", server.base_url, "--json")
        failed = run_cli(*args, "--timeout", "3", timeout=30)
        server.kill()
        server.start("--fault", "none")
        back = run_cli(*args, "--timeout", "30")
    assert_one_error_line(failed, code, status)
    assert back.returncode == 0 and json.loads(back.stdout)["status"] == "ok", back.stderr


def test_server_not_up_then_started(image_file: Path) -> None:
    server = ServerProcess()
    server.start()
    server.kill()
    args = (str(image_file), "the mug", "--base-url", server.base_url, "--json")
    down = run_cli(*args, "--timeout", "5", timeout=50)
    with server:
        back = run_cli(*args)
    assert_one_error_line(down, 3, "engine_unavailable")
    assert "cannot reach" in down.stderr
    assert back.returncode == 0 and json.loads(back.stdout)["status"] == "ok", back.stderr


def test_server_killed_mid_answer(image_file: Path) -> None:
    with ServerProcess("--chunk-delay", "0.3", "--log-requests") as server:  # 12 s an answer
        proc = subprocess.Popen(
            [EXE, str(image_file), "the mug", "--backend", "openai", "--json"]
            + ["--base-url", server.base_url, "--timeout", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        server.wait_for_request()
        time.sleep(0.5)  # a few chunks are out
        server.kill()
        out, err = proc.communicate(timeout=120)
    killed = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_one_error_line(killed, 3, "engine_unavailable")


def test_api_key_comes_from_the_environment_and_never_shows(image_file: Path) -> None:
    key = "sk-cli-SECRET-0815"
    env = {**os.environ, "EGM_API_KEY": key}
    reply = '</think>```json\n[{"bbox_2d": [100, 100, 500, 500]}]\n```'
    with ScriptedOpenAIServer(reply=lambda request: reply, model="egm", api_key=key) as server:
        server.echo_auth = True  # error bodies repeat the Authorization header
        args = (str(image_file), "the mug", "--base-url", server.base_url, "--json", "-v")
        good = run_cli(*args, env=env)
        server.fail_status = 500
        bad = run_cli(*args, env=env)
        flag = run_cli(*args, "--api-key", key)
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 1 and "Bearer ***" in bad.stdout
    assert flag.returncode == 2  # there is no flag for the key (argparse refuses it)
    for proc in (good, bad, flag):
        assert key not in proc.stdout and key not in proc.stderr


def test_over_long_prompt_is_refused_before_the_engine(image_file: Path) -> None:
    with ScriptedOpenAIServer(model="egm") as server:
        proc = run_cli(str(image_file), "the mug " * 100, "--base-url", server.base_url, "--json")
    assert proc.returncode == 2 and "too long" in proc.stderr
    assert server.hits == 0


@pytest.mark.ml
@pytest.mark.parametrize("backend", ["transformers", "vllm"])
def test_in_process_backends_run_on_the_tiny_model(
    backend: str, tiny_model_dir, image_file: Path
) -> None:
    if backend == "vllm":
        pytest.importorskip("vllm")
    proc = run_cli(
        str(image_file),
        "the mug",
        "--backend",
        backend,
        "--model",
        str(tiny_model_dir),
        "--json",
        "--max-new-tokens",
        "8",
        "--timeout",
        "240",
        timeout=400,
    )
    out = json.loads(proc.stdout)
    assert out["status"] in ("ok", "not_found", "malformed_output"), proc.stderr
    assert out["tokens"] == 8 and out["model"] == str(tiny_model_dir)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_the_files_own_bytes_go_out_unless_it_is_resized(tmp_path: Path, fmt: str) -> None:
    import base64

    path = tmp_path / f"scene.{fmt.lower()}"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 100, 3), np.uint8)).save(
        path, fmt
    )
    reply = '</think>```json\n[{"bbox_2d": [100, 100, 500, 500], "label": "mug"}]\n```'
    sent = []
    with ScriptedOpenAIServer(reply=lambda request: reply, model="egm") as server:
        for extra in ([], ["--max-pixels", "1000"]):
            proc = run_cli(str(path), "the mug", "--base-url", server.base_url, *extra)
            assert proc.returncode == 0, proc.stderr
            url = server.requests[-1]["messages"][0]["content"][0]["image_url"]["url"]
            sent.append(base64.b64decode(url.split(",", 1)[1]))
    assert sent[0] == path.read_bytes()  # as stored: not decoded and re-encoded
    with Image.open(io.BytesIO(sent[1])) as img:  # resized: the smaller pixels as JPEG
        assert img.format == "JPEG" and img.width * img.height <= 1000


# ---------------------------------------------------------------- issue 20, point 6
def test_base_url_alone_means_the_openai_backend(image_file: Path) -> None:
    # It silently used the embedded model (exit 0, status ok): the README's own GPU examples
    # omit --backend openai.
    assert EXE, "egm-ground is not installed in the venv"
    reply = '</think>```json\n[{"bbox_2d": [100, 100, 500, 500], "label": "mug"}]\n```'
    with ScriptedOpenAIServer(reply=lambda request: reply, model="egm") as server:
        proc = subprocess.run(
            [EXE, str(image_file), "the mug", "--base-url", server.base_url, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "ok" and out["model"] == "egm"
    assert server.hits == 1 and "EGM-Tiny" not in proc.stderr


def test_base_url_with_another_backend_is_refused_in_one_line(image_file: Path) -> None:
    proc = run_cli(str(image_file), "the mug", "--backend", "embedded", "--base-url", "http://h/v1")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        "egm-ground: error: --base-url is for --backend openai, not --backend embedded\n"
    )


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("  ", "empty command"), ("the mug\x07", "control characters"), ("mug " * 200, "too long")],
)
def test_the_prompt_is_checked_before_any_model_loads(
    image_file: Path, monkeypatch, prompt: str, message: str
) -> None:
    # It was checked only after a 4 s model load.
    from egm_ros.cli import ground

    built: list = []
    monkeypatch.setattr(ground, "create_engine", built.append)
    args = ground.build_parser().parse_args([str(image_file), prompt])
    assert ground.resolve_backend(args) is None and args.backend == "embedded"
    outcome = ground.run(args)
    assert outcome.status.value == "invalid_input" and message in outcome.message
    assert built == []
