"""The scripted server as a process: it restarts on the same port, and the soak script's
markers cause the statuses the soak report expects, through the production engine and grounder
(so a soak 'unexpected' count means the node, not the script)."""

from __future__ import annotations

import numpy as np
import pytest

from dev.scripted_server import ServerProcess
from dev.soak import KINDS
from egm_ros.core.grounder import Grounder, GrounderConfig
from egm_ros.core.types import Mode, Status
from egm_ros.engines.openai_engine import OpenAIEngine

IMAGE = np.zeros((48, 64, 3), np.uint8)
ENGINE_KINDS = [k for k in KINDS if k.frame == "newest" and k.topic == "grounding_command"]


@pytest.fixture(scope="module")
def soak_server():
    with ServerProcess("--script", "soak", "--hang-seconds", "10") as server:
        yield server


@pytest.mark.parametrize("kind", ENGINE_KINDS, ids=[k.name for k in ENGINE_KINDS])
def test_soak_markers_give_the_expected_status(soak_server, kind) -> None:
    with OpenAIEngine(soak_server.base_url, backoff_s=0.01) as engine:
        grounder = Grounder(engine, GrounderConfig(timeout=2.0))
        outcome = grounder.ground(IMAGE, kind.prompt, Mode.AMODAL if kind.amodal else None)
    assert outcome.status is Status[kind.expected], outcome.message
    if kind.expected == "OK":
        assert outcome.objects[0].visible is not None
        assert outcome.objects[0].amodal_predicted is kind.amodal


def test_restart_keeps_the_port_and_kill_closes_it() -> None:
    server = ServerProcess()
    url = server.start()
    pid = server.pid
    server.kill()
    assert server.proc is None
    assert server.start() == url and server.pid != pid
    server.kill()
