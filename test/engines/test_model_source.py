"""Where an in-process engine's model comes from: a folder, the local Hugging Face cache, or the
hub; and one line within seconds when none of them has it (issue 20, point 8: an offline robot
waited minutes of hub retries for a model name)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from egm_ros.core.types import GroundingError, Status
from egm_ros.engines import model_source
from egm_ros.engines.model_source import cached_folder, locate_model

EXE = shutil.which("egm-ground", path=str(Path(sys.executable).parent))


class Blackhole:
    """A hub that accepts connections and never answers (a network that swallows packets
    looks the same to a client: nothing comes back). Counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


class NotFoundHub:
    """A reachable hub that has nothing (404 to everything) and logs what was asked."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        paths = self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                paths.append(self.path)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_cache(root: Path, repo: str) -> Path:
    """A cache entry as ``hf download`` leaves it: refs/main names a snapshot folder."""
    entry = root / f"models--{repo.replace('/', '--')}"
    snapshot = entry / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text("a" * 40)
    return snapshot


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The hub library pointed at a cache in tmp_path and at a given endpoint, online."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)

    def at(url: str) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", url)

    return at


def test_a_folder_is_used_as_it_is_and_a_missing_one_is_one_line(tmp_path) -> None:
    assert locate_model(str(tmp_path)) == str(tmp_path)
    for path in ("/no/such/model", "./models/EGM-8B", "a/b/c"):
        with pytest.raises(GroundingError) as err:
            locate_model(path)
        assert err.value.status is Status.ENGINE_UNAVAILABLE
        assert err.value.message == f"no model folder {path!r}"


def test_offline_a_cached_name_is_its_snapshot_folder_and_another_fails_at_once(
    hub, tmp_path
) -> None:
    snapshot = fake_cache(tmp_path / "hub", "org/cached")
    blackhole = Blackhole()
    try:
        hub(blackhole.url)
        assert cached_folder("org/cached") == str(snapshot)
        assert locate_model("org/cached") == str(snapshot)
        with pytest.raises(GroundingError) as err:
            locate_model("org/other")
    finally:
        blackhole.close()
    assert err.value.status is Status.ENGINE_UNAVAILABLE
    assert "`hf download org/other`" in err.value.message
    assert str(tmp_path / "hub") in err.value.message and blackhole.url in err.value.message
    assert len(blackhole.accepted) == 2  # one short check per call, no retries


def test_with_a_reachable_hub_the_name_goes_to_the_library_unchanged(hub, tmp_path) -> None:
    fake_cache(tmp_path / "hub", "org/cached")
    server = NotFoundHub()
    try:
        hub(server.url)
        assert locate_model("org/cached") == "org/cached"  # the library may update it
        assert locate_model("org/name") == "org/name"
    finally:
        server.close()


def test_hub_offline_mode_is_out_of_reach_without_asking(monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "is_offline_mode", lambda: True)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    assert not model_source.hub_reachable()


def egm_ground(tmp_path: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess:
    """egm-ground as a user runs it without HF_HUB_OFFLINE, on its own empty cache."""
    assert EXE, "egm-ground is not installed in the venv"
    image = tmp_path / "scene.png"
    Image.new("RGB", (64, 48)).save(image)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=endpoint)
    return subprocess.run(
        [EXE, str(image), "the mug", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.ml
@pytest.mark.parametrize(
    "args",
    [["--model", "egm-test"], ["--backend", "transformers", "--model", "org/name"]],
    ids=["embedded", "transformers"],
)
def test_egm_ground_offline_says_how_to_get_the_model_in_one_line(tmp_path, args) -> None:
    blackhole = Blackhole()
    try:
        proc = egm_ground(tmp_path, blackhole.url, *args)
    finally:
        blackhole.close()
    name = args[-1]
    assert proc.returncode == 3, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"egm-ground: error: engine_unavailable: model {name!r} is neither")
    assert f"run `hf download {name}`" in line
    assert len(blackhole.accepted) == 1  # one check; it used to retry every file 5 times


@pytest.mark.ml
def test_egm_ground_with_a_reachable_hub_still_asks_it_for_the_model(tmp_path) -> None:
    server = NotFoundHub()
    try:
        proc = egm_ground(tmp_path, server.url, "--backend", "transformers", "--model", "org/x")
    finally:
        server.close()
    assert proc.returncode == 3 and "cannot load model 'org/x'" in proc.stderr
    assert [p for p in server.paths if "org/x" in p]  # transformers asked the hub for it
