"""A real vLLM OpenAI-compatible server (vllm-cpu) on loopback, serving the project's tiny
Qwen3-VL: the OpenAI engine and `egm-ground` run against it. `vllm serve` itself fails with the
vllm-cpu distribution (its metadata is named vllm-cpu), so the server module is started as
`python -m vllm.entrypoints.openai.api_server`, the same server. Start-up: about a minute."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from egm_ros.core.engine import EngineRequest, SamplingParams
from egm_ros.core.types import Status
from egm_ros.engines.openai_engine import OpenAIEngine

pytestmark = [pytest.mark.ml, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tiny_model_dir, tmp_path_factory):
    pytest.importorskip("vllm")
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                str(tiny_model_dir),
                "--served-model-name",
                "egm-tiny-test",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--max-model-len",
                "2048",
                "--limit-mm-per-prompt",
                '{"image": 1, "video": 0}',
                "--enforce-eager",
                # per-request mm_processor_kwargs: the OpenAI engine's server_max_pixels
                "--trust-request-mm-kwargs",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not ready in 300 s: {log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield f"{base}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_openai_engine_against_vllm(vllm_server: str) -> None:
    engine = OpenAIEngine(vllm_server, timeout=60)
    try:
        image = np.zeros((224, 224, 3), np.uint8)
        requests = [
            EngineRequest(
                image=image,
                prompt="find <ref>the mug</ref>",
                sampling=SamplingParams(max_new_tokens=12),
            )
            for _ in range(2)
        ]
        outputs = engine.generate(requests, timeout=60)
        assert engine.model_name == "egm-tiny-test"
        assert [o.tokens for o in outputs] == [12, 12]  # the server's usage record
        assert engine.health()
    finally:
        engine.close()


def test_server_max_pixels_vllm_resizes_an_undecoded_frame_to_that_limit(vllm_server: str) -> None:
    """A 1920x1080 JPEG goes to vLLM as its own bytes with ``server_max_pixels``: the server's
    processor reads it at the size its ``smart_resize`` gives for that limit (as many prompt
    tokens as the frame sent at exactly that size), not at the model's own limit (more tokens,
    as without the setting)."""
    import cv2

    from egm_ros.core.compressed import encoded_as_is
    from egm_ros.core.families import smart_resize
    from egm_ros.core.grounder import Grounder, GrounderConfig
    from egm_ros.core.images import encode_jpeg

    y, x = np.mgrid[0:1080, 0:1920]
    rgb = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    encoded = encoded_as_is(encode_jpeg(rgb, 90))
    limit = 160 * 160  # the test model's own: 224 x 224 (patch 16, merge 2: factor 32)
    height, width = smart_resize(1080, 1920, factor=32, min_pixels=112 * 112, max_pixels=limit)

    def read(engine: OpenAIEngine, image: np.ndarray | None) -> int:
        request = EngineRequest(
            image=image,
            prompt="find <ref>the mug</ref>",
            encoded=encoded if image is None else None,
            sampling=SamplingParams(max_new_tokens=4),
        )
        try:
            (out,) = engine.generate([request], timeout=60)
        finally:
            engine.close()
        return out.prompt_tokens

    resizing = OpenAIEngine(vllm_server, timeout=60, server_max_pixels=limit)
    assert Grounder(resizing, GrounderConfig(max_pixels=limit)).sends_as_is((1920, 1080))
    undecoded = read(resizing, None)
    at_that_size = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    assert (height, width) == (96, 192)
    assert undecoded == read(OpenAIEngine(vllm_server, timeout=60), at_that_size) > 0
    assert read(OpenAIEngine(vllm_server, timeout=60), None) > undecoded  # the model's limit


def test_egm_ground_cli_against_vllm(vllm_server: str, tmp_path: Path) -> None:
    image = tmp_path / "scene.png"
    Image.fromarray(np.zeros((224, 224, 3), np.uint8)).save(image)
    exe = shutil.which("egm-ground", path=str(Path(sys.executable).parent))
    proc = subprocess.run(
        [
            exe,
            str(image),
            "the mug",
            "--amodal",
            "--backend",
            "openai",
            "--base-url",
            vllm_server,
            "--json",
            "--max-new-tokens",
            "16",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = json.loads(proc.stdout)
    # A random model writes noise: the CLI must still answer with a clean status.
    assert out["status"] in {
        s.value for s in (Status.OK, Status.NOT_FOUND, Status.MALFORMED_OUTPUT)
    }, proc.stderr
    assert out["tokens"] > 0 and out["model"] == "egm-tiny-test"
    assert proc.returncode == (1 if out["status"] == "malformed_output" else 0)
