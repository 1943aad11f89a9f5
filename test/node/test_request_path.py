"""A command's one path (intake, mode, frame choice, queue, grounder, exactly one result),
driven directly: no node and no executor, a scripted test engine behind a real grounder, the
real frame buffer, work queue and message conversions."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from node_harness import make_image, wait_for  # noqa: E402
from scripted_engine import ScriptedEngine, answer  # noqa: E402

from egm_ros.core.families import Family  # noqa: E402
from egm_ros.core.grounder import Grounder, GrounderConfig  # noqa: E402
from egm_ros.core.types import Mode  # noqa: E402
from egm_ros.msg import GroundingCommand, GroundingResult  # noqa: E402
from egm_ros.node.frame_buffer import FrameBuffer  # noqa: E402
from egm_ros.node.request_path import PathSettings, RequestPath  # noqa: E402

pytestmark = pytest.mark.ros

ANSWER = answer([100, 200, 300, 400])


class Path:
    """A started path and what came out of it."""

    def __init__(self, engine: ScriptedEngine, workers: int = 2, **settings) -> None:
        self.engine = engine
        self.results: list[GroundingResult] = []
        self.warnings: list[str] = []
        self.hooked: list[tuple[bool, str]] = []
        self.path = RequestPath(
            "cam",
            FrameBuffer(60.0),
            PathSettings(**settings),
            now=lambda: Time(sec=99),
            warn=self.warnings.append,
            on_result=lambda rgb, outcome, header: self.hooked.append(
                (rgb is not None, outcome.status.value)
            ),
        )
        self.path.start(Grounder(engine, GrounderConfig(family=Family.QWEN3_VL)), workers)

    def submit(self, prompt: str = "the mug", **kwargs) -> None:
        self.path.submit(prompt, self.results.append, **kwargs)

    def wait(self, count: int) -> list[GroundingResult]:
        wait_for(lambda: len(self.results) >= count, 20)
        return list(self.results)


@pytest.fixture
def made():
    paths: list[Path] = []

    def make(engine: ScriptedEngine | None = None, **kwargs) -> Path:
        paths.append(Path(engine or ScriptedEngine(visible=ANSWER, amodal=ANSWER), **kwargs))
        return paths[-1]

    yield make
    for p in paths:
        p.engine.gate.set()
        p.path.stop()


def stamp(sec: int, nanosec: int = 0) -> Time:
    return Time(sec=sec, nanosec=nanosec)


def held(made, first: str = "first", **settings) -> Path:
    """A one-worker path whose worker holds ``first`` in the engine until ``engine.gate`` is
    set."""
    engine = ScriptedEngine(visible=ANSWER)
    engine.gate.clear()
    p = made(engine, workers=1, **settings)
    p.path.add_frame(make_image(64, 48, stamp(1)))
    p.submit(first)
    assert engine.started.acquire(timeout=10)
    return p


def test_a_text_command_gets_one_result_on_the_newest_frame(made) -> None:
    p = made()
    p.path.add_frame(make_image(100, 50, stamp(1), "old"))
    p.path.add_frame(make_image(200, 100, stamp(2), "new"))
    p.submit()
    (result,) = p.wait(1)
    assert result.status == GroundingResult.STATUS_OK, result.status_message
    assert result.header.frame_id == "new" and result.image_width == 200
    assert result.request_id == "cam-1" and result.model == "scripted"
    assert result.mode == GroundingResult.MODE_VISIBLE
    assert p.hooked == [(True, "ok")] and p.warnings == []


def test_a_frame_stamp_picks_the_closest_frame_or_answers_no_frame(made) -> None:
    p = made(frame_stamp_tolerance=0.1)
    for sec in (10, 11, 12):
        p.path.add_frame(make_image(64, 48, stamp(sec), f"f{sec}"))
    p.submit(request_id="near", stamp_ns=11 * 10**9 + 40)
    p.submit(request_id="far", stamp_ns=30 * 10**9)
    far, near = sorted(p.wait(2), key=lambda r: r.request_id)
    assert near.header.frame_id == "f11" and near.status == GroundingResult.STATUS_OK
    assert far.status == GroundingResult.STATUS_NO_FRAME
    assert "requested stamp" in far.status_message
    assert far.header.stamp.sec == 99  # no frame: stamped now
    assert len(p.engine.calls) == 1


@pytest.mark.parametrize("with_image", [False, True], ids=["command", "goal"])
def test_an_unknown_mode_is_invalid_input_for_commands_and_goals_alike(made, with_image) -> None:
    # Issue 16, defect 3: the mode of a command is decoded in one place, one way.
    p = made()
    p.path.add_frame(make_image(64, 48, stamp(1)))
    image = make_image(32, 16, stamp(5), "goal") if with_image else None
    p.submit(mode_code=7, image=image)
    (result,) = p.wait(1)
    assert result.status == GroundingResult.STATUS_INVALID_INPUT
    assert "unknown mode 7" in result.status_message
    assert p.engine.calls == []
    assert p.warnings and "unknown mode 7" in p.warnings[0]


def test_mode_codes_default_visible_and_amodal(made) -> None:
    p = made(mode=Mode.AMODAL)
    p.path.add_frame(make_image(64, 48, stamp(1)))
    p.submit(request_id="a", mode_code=GroundingCommand.MODE_DEFAULT)
    p.submit(request_id="b", mode_code=GroundingCommand.MODE_VISIBLE)
    default, visible = sorted(p.wait(2), key=lambda r: r.request_id)
    assert default.mode == GroundingResult.MODE_AMODAL
    assert visible.mode == GroundingResult.MODE_VISIBLE
    assert sorted(len(call) for call in p.engine.calls) == [1, 2]


def test_a_goal_image_is_used_instead_of_the_buffer(made) -> None:
    p = made()
    p.path.add_frame(make_image(64, 48, stamp(1), "buffered"))
    p.submit(image=make_image(200, 100, stamp(9), "goal_cam"))
    (result,) = p.wait(1)
    assert result.header.frame_id == "goal_cam" and result.image_width == 200


def test_a_command_that_finds_only_stale_frames_takes_the_cameras_next_one(made) -> None:
    """Issue 21: a stream that pauses for longer than the buffer keeps frames, while commands
    still arrive, is a late frame, not no_frame; without a next frame in the grace it is."""
    p = made()
    p.path.frames = FrameBuffer(0.2)
    p.path.add_frame(make_image(64, 48, stamp(1), "before"))
    time.sleep(0.3)  # the stream pauses: the newest frame is now stale
    p.submit(request_id="a")
    time.sleep(0.1)
    p.path.add_frame(make_image(64, 48, stamp(2), "next"))
    (late,) = p.wait(1)
    assert late.status == GroundingResult.STATUS_OK, late.status_message
    assert late.header.frame_id == "next"
    time.sleep(0.3)
    begun = time.monotonic()
    p.submit(request_id="b")
    (_, none) = p.wait(2)
    assert none.status == GroundingResult.STATUS_NO_FRAME and "old" in none.status_message
    assert 0.9 <= time.monotonic() - begun < 5
    assert len(p.engine.calls) == 1


def test_no_frame_and_bad_frames_are_answered_without_the_engine(made) -> None:
    p = made()
    p.submit(request_id="a")
    bad = make_image(64, 48, stamp(2))
    bad.encoding = "bayer_weird16"
    p.path.add_frame(bad)
    p.submit(request_id="b")
    none, wrong = sorted(p.wait(2), key=lambda r: r.request_id)
    assert none.status == GroundingResult.STATUS_NO_FRAME
    assert wrong.status == GroundingResult.STATUS_INVALID_INPUT
    assert "bayer_weird16" in wrong.status_message and wrong.header.stamp.sec == 2
    assert (wrong.image_width, wrong.image_height) == (64, 48)
    assert p.engine.calls == [] and len(p.warnings) == 2


def test_a_full_queue_answers_busy_at_once_and_every_command_gets_one_result(made) -> None:
    p = held(made, "the mug 0", queue_size=1)  # the worker holds the first
    engine = p.engine
    p.submit("the mug 1")  # waits in the queue
    p.submit("the mug 2")  # queue full
    (busy,) = p.wait(1)
    assert busy.command == "the mug 2" and busy.status == GroundingResult.STATUS_BUSY
    assert "queue full (1 waiting)" in busy.status_message
    engine.gate.set()
    results = p.wait(3)
    time.sleep(0.2)
    assert len(p.results) == 3
    assert sorted(r.command for r in results) == [f"the mug {i}" for i in range(3)]


def test_a_new_queue_size_resizes_the_running_queue(made) -> None:
    # Issue 20, point 5: queue_size set at run time was accepted and ignored (12 of 20
    # commands accepted with queue_size 1, and each busy reply claimed "(1 waiting)").
    p = held(made, "the mug 0", queue_size=8)
    p.path.settings = PathSettings(queue_size=1)
    for i in range(1, 20):
        p.submit(f"the mug {i}")
    busy = p.wait(18)
    assert [r.command for r in busy] == [f"the mug {i}" for i in range(2, 20)]
    assert {r.status for r in busy} == {GroundingResult.STATUS_BUSY}
    assert all("(1 waiting)" in r.status_message for r in busy)
    p.path.settings = PathSettings(queue_size=3)
    for i in range(20, 23):
        p.submit(f"the mug {i}")
    assert len(p.wait(19)) == 19 and p.results[-1].command == "the mug 22"
    assert p.path.queue.depth == 3
    p.engine.gate.set()
    assert {r.status for r in p.wait(23)[19:]} == {GroundingResult.STATUS_OK}


def test_request_timeout_counts_the_time_in_the_queue(made) -> None:
    p = held(made, request_timeout=0.3)
    engine = p.engine
    p.submit("second")
    time.sleep(0.5)  # the second has waited out its whole budget behind the first
    engine.gate.set()
    second = next(r for r in p.wait(2) if r.command == "second")
    assert second.status == GroundingResult.STATUS_TIMEOUT
    assert "in the queue" in second.status_message
    assert len(engine.calls) == 1


def test_a_request_cancelled_while_queued_is_answered_cancelled(made) -> None:
    p = held(made)
    engine = p.engine
    cancel = threading.Event()
    p.submit("second", cancel=cancel)
    cancel.set()
    engine.gate.set()
    second = next(r for r in p.wait(2) if r.command == "second")
    assert second.status == GroundingResult.STATUS_CANCELLED


def test_without_a_started_engine_commands_are_answered_busy(made) -> None:
    results: list[GroundingResult] = []
    path = RequestPath("cam", FrameBuffer(1.0), PathSettings(), now=Time, warn=lambda m: None)
    path.submit("the mug", results.append)
    (result,) = results
    assert result.status == GroundingResult.STATUS_BUSY


def test_stop_serves_what_is_queued_before_it_returns(made) -> None:
    engine = ScriptedEngine(visible=ANSWER)
    engine.gate.clear()
    p = made(engine, workers=1)
    p.path.add_frame(make_image(64, 48, stamp(1)))
    for i in range(3):
        p.submit(f"the mug {i}")
    assert engine.started.acquire(timeout=10)
    engine.gate.set()
    p.path.stop()
    assert len(p.results) == 3
    assert p.path.grounder is None and p.path.queue is None
