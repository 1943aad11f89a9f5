"""The grounding node in-process with rclpy and a real engine path: the OpenAI-compatible
engine against a scripted OpenAI-compatible HTTP server on loopback (the server answers like an
EGM checkpoint; the engine, HTTP, streaming and parsing are the production code)."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State  # noqa: E402
from node_harness import RELIABLE, make_image, wait_for  # noqa: E402
from openai_server import ScriptedOpenAIServer, ServerProcess  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from egm_ros.action import Ground  # noqa: E402
from egm_ros.msg import GroundingCommand, GroundingResult  # noqa: E402

pytestmark = pytest.mark.ros

VISIBLE = [100, 200, 300, 400]  # 0..1000 relative, as Qwen3-VL answers
AMODAL = [100, 200, 300, 600]


def egm_reply(request: dict) -> str:
    text = json.dumps(request["messages"][0]["content"])
    amodal = "amodal" in text
    box = AMODAL if amodal else VISIBLE
    return (
        "The mug is on the table; the laptop hides its lower part.</think>\n"
        f'```json\n[{{"bbox_2d": {box}, "label": "mug"}}]\n```'
    )


@pytest.fixture
def server():
    with ScriptedOpenAIServer(reply=egm_reply, model="EGM-test") as srv:
        yield srv


def node_params(server, **extra) -> dict:
    params = dict(
        backend="openai", base_url=server.base_url, request_timeout=10.0, model_family="qwen3_vl"
    )
    params.update(extra)
    return params


def stamp(sec: int, nanosec: int = 0) -> Time:
    return Time(sec=sec, nanosec=nanosec)


def send_frame_and_command(probe, image, prompt: str) -> None:
    wait_for(probe.connected)
    probe.image_pub.publish(image)
    time.sleep(0.2)  # best-effort image delivery before the command
    probe.command_pub.publish(String(data=prompt))


def corners(box) -> list[float]:
    cx, cy = box.center.position.x, box.center.position.y
    return [cx - box.size_x / 2, cy - box.size_y / 2, cx + box.size_x / 2, cy + box.size_y / 2]


def test_command_gives_a_result_with_the_frame_stamp_and_pixel_boxes(server, harness) -> None:
    harness.grounding_node(**node_params(server))
    probe = harness.probe()
    send_frame_and_command(probe, make_image(640, 480, stamp(7, 5), "cam_optical"), "the red mug")
    (result,) = probe.wait_results(1)
    assert result.status == GroundingResult.STATUS_OK, result.status_message
    assert (result.header.stamp.sec, result.header.stamp.nanosec) == (7, 5)
    assert result.header.frame_id == "cam_optical"
    assert (result.image_width, result.image_height) == (640, 480)
    assert result.command == "the red mug"
    assert result.mode == GroundingResult.MODE_VISIBLE
    (obj,) = result.objects
    assert corners(obj.visible) == pytest.approx([64.0, 96.0, 192.0, 192.0])
    assert not obj.amodal_predicted
    assert "laptop" in result.reasoning
    assert result.model == "EGM-test"
    assert result.generated_tokens > 0
    assert result.latency.total_ms >= result.latency.inference_ms > 0


def test_amodal_command_batches_both_queries_and_pairs_the_boxes(server, harness) -> None:
    server.chunk_delay = 0.01  # answers take a while, as real ones do: both must be in flight
    harness.grounding_node(**node_params(server))
    probe = harness.probe()
    wait_for(probe.connected)
    probe.image_pub.publish(make_image(1000, 500, stamp(3)))
    time.sleep(0.2)
    probe.gcommand_pub.publish(
        GroundingCommand(
            prompt="the hidden mug", request_id="r-7", mode=GroundingCommand.MODE_AMODAL
        )
    )
    (result,) = probe.wait_results(1)
    assert result.status == GroundingResult.STATUS_OK, result.status_message
    assert result.request_id == "r-7"
    assert result.mode == GroundingResult.MODE_AMODAL
    (obj,) = result.objects
    assert corners(obj.visible) == pytest.approx([100.0, 100.0, 300.0, 200.0])
    assert obj.amodal_predicted
    assert corners(obj.amodal) == pytest.approx([100.0, 100.0, 300.0, 300.0])
    prompts = [json.dumps(r["messages"]) for r in server.requests]
    assert sum("amodal" in p for p in prompts) == 1 and len(prompts) == 2
    assert server.max_in_flight == 2  # sent together, so the server can batch them


def test_frame_closest_to_the_requested_stamp_is_used(server, harness) -> None:
    harness.grounding_node(**node_params(server))
    probe = harness.probe()
    wait_for(probe.connected)
    for sec in (10, 11, 12):
        probe.image_pub.publish(make_image(320, 240, stamp(sec), frame_id=f"f{sec}"))
    time.sleep(0.3)
    probe.gcommand_pub.publish(
        GroundingCommand(prompt="the mug", request_id="a", frame_stamp=stamp(11, 40))
    )
    probe.gcommand_pub.publish(
        GroundingCommand(prompt="the mug", request_id="b", frame_stamp=stamp(30))
    )
    first, second = sorted(probe.wait_results(2), key=lambda r: r.request_id)
    assert first.header.frame_id == "f11" and first.status == GroundingResult.STATUS_OK
    assert second.status == GroundingResult.STATUS_NO_FRAME
    assert "requested stamp" in second.status_message


@pytest.mark.parametrize(
    ("image", "prompt", "status", "words"),
    [
        (make_image(64, 48, stamp(1), encoding="rgb8"), "   ", "INVALID_INPUT", "empty"),
        (None, "the mug", "NO_FRAME", "no camera frame"),
    ],
    ids=["empty-command", "no-frame"],
)
def test_bad_commands_get_an_error_result(server, harness, image, prompt, status, words) -> None:
    harness.grounding_node(**node_params(server))
    probe = harness.probe()
    wait_for(probe.connected)
    if image is not None:
        probe.image_pub.publish(image)
        time.sleep(0.2)
    probe.command_pub.publish(String(data=prompt))
    (result,) = probe.wait_results(1)
    assert result.status == getattr(GroundingResult, f"STATUS_{status}")
    assert words in result.status_message.lower()


def test_bad_image_and_engine_faults_then_the_next_command_is_served(server, harness) -> None:
    # Frames stay usable for the whole test: faults with retries take seconds on a busy machine.
    harness.grounding_node(**node_params(server, request_timeout=3.0, frame_buffer_seconds=60.0))
    probe = harness.probe()
    wait_for(probe.connected)

    bad = make_image(64, 48, stamp(2))
    bad.encoding = "bayer_weird16"
    send_frame_and_command(probe, bad, "the mug")
    probe.wait_results(1)

    short = make_image(64, 48, stamp(3))
    short.data = bytes(10)
    send_frame_and_command(probe, short, "the mug")
    probe.wait_results(2)

    good = make_image(64, 48, stamp(4))
    server.reply = lambda request: "I am not sure what you mean by that [[[ {"
    send_frame_and_command(probe, good, "the mug")
    probe.wait_results(3)

    server.reply = egm_reply
    server.fail_status = 500
    probe.command_pub.publish(String(data="the mug"))
    probe.wait_results(4)

    server.fail_status = None
    probe.command_pub.publish(String(data="the mug"))
    results = probe.wait_results(5)

    statuses = [r.status for r in results]
    assert statuses == [
        GroundingResult.STATUS_INVALID_INPUT,
        GroundingResult.STATUS_INVALID_INPUT,
        GroundingResult.STATUS_MALFORMED_OUTPUT,
        GroundingResult.STATUS_ENGINE_ERROR,
        GroundingResult.STATUS_OK,
    ], [r.status_message for r in results]
    assert "bayer_weird16" in results[0].status_message
    assert (results[0].header.stamp.sec, results[1].header.stamp.sec) == (2, 3)


def test_engine_down_gives_engine_unavailable_and_recovers(harness) -> None:
    srv = ScriptedOpenAIServer(reply=egm_reply, model="EGM-test")
    base_url = srv.start()
    harness.grounding_node(
        backend="openai",
        base_url=base_url,
        request_timeout=3.0,
        model="EGM-test",
        model_family="qwen3_vl",
        frame_buffer_seconds=60.0,  # the one frame stays usable while the server is down
    )
    probe = harness.probe()
    send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug")
    assert probe.wait_results(1)[0].status == GroundingResult.STATUS_OK
    port = srv.port
    srv.stop()
    probe.command_pub.publish(String(data="the mug"))
    down = probe.wait_results(2)[1]
    assert down.status == GroundingResult.STATUS_ENGINE_UNAVAILABLE, down.status_message
    with ScriptedOpenAIServer(reply=egm_reply, model="EGM-test", port=port):
        probe.command_pub.publish(String(data="the mug"))
        back = probe.wait_results(3)[2]
    assert back.status == GroundingResult.STATUS_OK, back.status_message


def test_full_queue_answers_busy_and_every_command_gets_one_result(server, harness) -> None:
    server.chunk_delay = 0.05  # each answer streams for about a second
    harness.grounding_node(**node_params(server, queue_size=1, workers=1))
    probe = harness.probe()
    send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug 0")
    time.sleep(0.3)  # the one worker has taken "the mug 0": the queue's one place is free
    for i in range(1, 5):
        probe.command_pub.publish(String(data=f"the mug {i}"))
    results = probe.wait_results(5, timeout=60)
    time.sleep(0.5)
    assert len(probe.results) == 5
    assert sorted(r.command for r in results) == [f"the mug {i}" for i in range(5)]
    statuses = [r.status for r in results]
    assert statuses.count(GroundingResult.STATUS_BUSY) >= 2
    assert statuses.count(GroundingResult.STATUS_OK) >= 2
    busy = next(r for r in results if r.status == GroundingResult.STATUS_BUSY)
    assert "queue full" in busy.status_message


def test_lifecycle_transitions(server, harness) -> None:
    node = harness.grounding_node(**node_params(server, autostart=False))
    probe = harness.probe()
    assert node._state_machine.current_state[1] == "unconfigured"
    time.sleep(0.3)
    assert probe.command_pub.get_subscription_count() == 0
    assert node.engine is None

    node.trigger_configure()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_INACTIVE
    assert node.engine is not None and probe.command_pub.get_subscription_count() == 0

    node.trigger_activate()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_ACTIVE
    send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug")
    assert probe.wait_results(1)[0].status == GroundingResult.STATUS_OK

    node.trigger_deactivate()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_INACTIVE
    wait_for(lambda: probe.command_pub.get_subscription_count() == 0, 5)

    node.trigger_cleanup()
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
    assert node.engine is None


def test_failed_engine_load_leaves_the_node_unconfigured(harness) -> None:
    node = harness.grounding_node(backend="vllm", model="")  # vllm needs a model
    assert node._state_machine.current_state[1] == "unconfigured"
    assert "needs a model" in node.engine_state


def test_action_goal_with_feedback_result_and_cancel(server, harness) -> None:
    server.chunk_delay = 0.02
    harness.grounding_node(**node_params(server))
    probe = harness.probe()
    client = ActionClient(probe.node, Ground, "ground")
    wait_for(client.server_is_ready)
    image = make_image(200, 100, stamp(9), frame_id="goal_cam")
    feedback: list = []

    goal = Ground.Goal(prompt="the mug", mode=GroundingCommand.MODE_AMODAL, image=image)
    done = threading.Event()
    holder: list = []

    def on_goal(future) -> None:
        handle = future.result()
        holder.append(handle)
        handle.get_result_async().add_done_callback(
            lambda f: (holder.append(f.result()), done.set())
        )

    client.send_goal_async(goal, feedback_callback=feedback.append).add_done_callback(on_goal)
    assert done.wait(30)
    result = holder[1].result.result
    assert result.status == GroundingResult.STATUS_OK, result.status_message
    assert result.header.frame_id == "goal_cam" and result.image_width == 200
    assert result.objects[0].amodal_predicted
    assert feedback and feedback[-1].feedback.tokens > 0
    assert "laptop" in feedback[-1].feedback.partial_reasoning or feedback[-1].feedback.tokens

    server.chunk_delay = 0.2  # slow enough to cancel mid-generation
    cancelled = threading.Event()
    holder.clear()
    client.send_goal_async(Ground.Goal(prompt="the mug", image=image)).add_done_callback(on_goal)
    wait_for(lambda: holder, 10)
    time.sleep(0.5)
    holder[0].cancel_goal_async().add_done_callback(lambda f: cancelled.set())
    done.clear()
    assert done.wait(30) and cancelled.is_set()
    assert holder[1].result.result.status == GroundingResult.STATUS_CANCELLED
    client.destroy()


def test_a_pending_goal_holds_no_callback(server, harness) -> None:
    """The node runs on one executor thread (issue 17): while a goal's answer streams, a topic
    command is still taken and answered."""
    server.chunk_delay = 0.1  # the goal's answer takes about two seconds
    harness.grounding_node(**node_params(server, workers=2))
    probe = harness.probe()
    client = ActionClient(probe.node, Ground, "ground")
    wait_for(client.server_is_ready)
    goal_done = threading.Event()
    image = make_image(64, 48, stamp(4))
    client.send_goal_async(Ground.Goal(prompt="the mug", image=image)).add_done_callback(
        lambda f: f.result().get_result_async().add_done_callback(lambda _r: goal_done.set())
    )
    wait_for(lambda: server.max_in_flight > 0, 10)  # the goal is with the engine
    probe.command_pub.publish(String(data="the cup"))  # no camera frame: no engine needed
    (refused,) = probe.wait_results(1, timeout=10)
    assert refused.status == GroundingResult.STATUS_NO_FRAME
    assert not goal_done.is_set()  # answered while the goal still streamed
    assert goal_done.wait(30)
    client.destroy()


def test_two_cameras_in_two_namespaces(server, harness) -> None:
    harness.grounding_node("/cam1", **node_params(server))
    harness.grounding_node("/cam2", **node_params(server))
    probe1, probe2 = harness.probe("/cam1"), harness.probe("/cam2")
    wait_for(probe1.connected)
    wait_for(probe2.connected)
    probe1.image_pub.publish(make_image(100, 100, stamp(1), frame_id="cam1"))
    probe2.image_pub.publish(make_image(200, 100, stamp(2), frame_id="cam2"))
    time.sleep(0.3)
    probe1.command_pub.publish(String(data="the mug"))
    probe2.command_pub.publish(String(data="the mug"))
    (r1,), (r2,) = probe1.wait_results(1), probe2.wait_results(1)
    time.sleep(0.3)
    assert len(probe1.results) == len(probe2.results) == 1
    assert (r1.header.frame_id, r1.image_width) == ("cam1", 100)
    assert (r2.header.frame_id, r2.image_width) == ("cam2", 200)


def test_diagnostics_report_engine_queue_and_latency(server, harness) -> None:
    harness.grounding_node(**node_params(server))
    probe = harness.probe()
    seen: list[DiagnosticArray] = []
    probe.node.create_subscription(DiagnosticArray, "/diagnostics", seen.append, RELIABLE)
    send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug")
    probe.wait_results(1)
    wait_for(
        lambda: any(any(kv.key == "latency_ms_p50" for kv in a.status[0].values) for a in seen), 10
    )
    values = {kv.key: kv.value for kv in seen[-1].status[0].values}
    assert values["engine_state"] == "active"
    assert values["backend"] == "openai"
    assert int(values["requests"]) >= 1
    assert "queue_depth" in values and "errors" in values


# The engine fault sequence against a server process on loopback that is killed (SIGKILL) and
# started again on the same port: each fault gives one error result, and the next command after
# the restart succeeds on the same node (no node restart, no reconfigure).
NODE_FAULTS = [
    # (--fault of the scripted server, result status)
    ("hang", "TIMEOUT"),
    ("slow", "TIMEOUT"),
    ("http500", "ENGINE_ERROR"),
    ("garbage", "ENGINE_ERROR"),
    ("drop", "ENGINE_UNAVAILABLE"),
    ("truncated", "MALFORMED_OUTPUT"),
]


@pytest.mark.slow
def test_server_process_faults_each_give_one_error_result_and_the_node_recovers(
    harness,
) -> None:
    server = ServerProcess("--log-requests")
    server.start()
    harness.grounding_node(
        backend="openai",
        base_url=server.base_url,
        request_timeout=2.0,
        model_family="qwen3_vl",
        frame_buffer_seconds=60.0,  # restarts take a while on a busy machine
    )
    probe = harness.probe()
    wait_for(probe.connected)
    expected: list[str] = []

    def command(status: str, restart: tuple[str, ...] | None = None) -> None:
        probe.image_pub.publish(make_image(64, 48, stamp(len(expected) + 1)))
        time.sleep(0.2)
        probe.command_pub.publish(String(data="the mug"))
        expected.append(status)
        probe.wait_results(len(expected), timeout=60)
        if restart is not None:
            server.kill()
            server.start(*restart)

    try:
        command("OK")
        for fault, status in NODE_FAULTS:
            server.kill()
            server.start("--fault", fault, "--hang-seconds", "60")
            command(status, restart=("--log-requests",))
            command("OK")
        server.kill()  # not up at all
        command("ENGINE_UNAVAILABLE", restart=("--chunk-delay", "0.2", "--log-requests"))
        # killed while it streams the answer
        probe.image_pub.publish(make_image(64, 48, stamp(len(expected) + 1)))
        time.sleep(0.2)
        probe.command_pub.publish(String(data="the mug"))
        expected.append("ENGINE_UNAVAILABLE")
        server.wait_for_request()
        time.sleep(0.3)
        server.kill()
        probe.wait_results(len(expected), timeout=60)
        server.start("--log-requests")
        command("OK")
    finally:
        server.kill()
    time.sleep(0.3)
    statuses = [r.status for r in probe.results]
    assert statuses == [getattr(GroundingResult, f"STATUS_{s}") for s in expected], [
        r.status_message for r in probe.results
    ]


# ---------------------------------------------------------------- security
SECRET = "sk-egm-SECRET-4711"


@pytest.mark.parametrize("source", ["env", "file"])
def test_api_key_never_appears_in_results_diagnostics_parameters_or_logs(
    harness, monkeypatch, tmp_path, capfd, caplog, source: str
) -> None:
    if source == "env":
        monkeypatch.setenv("EGM_API_KEY", SECRET)
        monkeypatch.delenv("EGM_API_KEY_FILE", raising=False)
    else:
        key_file = tmp_path / "api_key"
        key_file.write_text(SECRET + "\n")
        key_file.chmod(0o600)
        monkeypatch.delenv("EGM_API_KEY", raising=False)
        monkeypatch.setenv("EGM_API_KEY_FILE", str(key_file))
    caplog.set_level(logging.DEBUG)
    logs: list[Log] = []
    diagnostics: list[DiagnosticArray] = []
    with ScriptedOpenAIServer(reply=egm_reply, model="EGM-test", api_key=SECRET) as server:
        server.echo_auth = True  # a careless proxy: error bodies repeat the Authorization header
        # A namespace of its own: rcl maps a logger name to one /rosout publisher per process,
        # so a node of the same name left by an earlier test could take this node's lines.
        node = harness.grounding_node(f"/secret_{source}", **node_params(server))
        probe = harness.probe(f"/secret_{source}")
        # /rosout keeps its history (transient local): a log line published before this
        # subscription matched the node's publisher on a busy machine still arrives.
        history = QoSProfile(
            depth=1000,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
            reliability=ReliabilityPolicy.RELIABLE,
        )
        probe.node.create_subscription(Log, "/rosout", logs.append, history)
        probe.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug")
        probe.wait_results(1, timeout=60)
        server.fail_status = 500
        probe.command_pub.publish(String(data="the mug"))
        ok, failed = probe.wait_results(2, timeout=60)
        wait_for(
            lambda: any(
                kv.key == "errors_engine_error"
                for a in diagnostics[-1:]
                for kv in a.status[0].values
            ),
            60,
        )
        wait_for(lambda: any("scripted failure" in log.msg for log in logs), 60)  # on /rosout
        parameters = node.get_parameters(list(node._parameters))
    assert ok.status == GroundingResult.STATUS_OK, ok.status_message  # the key was sent
    assert failed.status == GroundingResult.STATUS_ENGINE_ERROR
    assert "Bearer ***" in failed.status_message  # the echo came back, redacted
    out, err = capfd.readouterr()
    seen = [repr(ok), repr(failed), out, err, caplog.text, repr(parameters)]
    seen += [repr(a) for a in diagnostics] + [log.msg for log in logs]
    assert not [text for text in seen if SECRET in text]


def test_engine_parameters_are_read_only_at_run_time(server, harness) -> None:
    node = harness.grounding_node(**node_params(server))
    probe = harness.probe()
    changes = [
        Parameter("base_url", value="http://203.0.113.7:8000/v1"),
        Parameter("verify_tls", value=False),
        Parameter("backend", value="vllm"),
        Parameter("model", value="other"),
    ]
    local = node.set_parameters(changes)
    client = AsyncParameterClient(probe.node, "grounding_node")
    assert client.wait_for_services(60)
    future = client.set_parameters(changes)  # as `ros2 param set` would
    wait_for(future.done, 60)
    remote = future.result().results
    assert [r.successful for r in local] == [r.successful for r in remote] == [False] * 4
    assert all("read-only" in r.reason for r in remote)
    assert node.get_parameter("base_url").value == server.base_url
    assert node.get_parameter("verify_tls").value is True
    assert node.engine.base_url == server.base_url.rstrip("/")
    send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug")
    assert probe.wait_results(1)[0].status == GroundingResult.STATUS_OK
    assert server.hits == 1  # still the operator's server


def test_over_long_command_is_refused_before_the_engine(server, harness) -> None:
    harness.grounding_node(**node_params(server))
    probe = harness.probe()
    send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug " * 2000)
    (result,) = probe.wait_results(1, timeout=60)
    assert result.status == GroundingResult.STATUS_INVALID_INPUT
    assert "too long" in result.status_message
    assert server.hits == 0


def test_request_timeout_counts_the_time_spent_in_the_queue(server, harness) -> None:
    server.hang = True  # each command that reaches the server holds the only worker 2 s
    harness.grounding_node(**node_params(server, request_timeout=2.0, workers=1, queue_size=4))
    probe = harness.probe()
    send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug 1")
    probe.command_pub.publish(String(data="the mug 2"))
    probe.command_pub.publish(String(data="the mug 3"))
    results = sorted(probe.wait_results(3, timeout=60), key=lambda r: r.command)
    server.hang = False
    assert [r.status for r in results] == [GroundingResult.STATUS_TIMEOUT] * 3
    # The third waited behind two full budgets: answered at once, never sent.
    assert "in the queue" in results[2].status_message
    assert server.hits <= 2


# ---------------------------------------------------------------- parameters and QoS
def _error_lines(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if "ERROR" in line and word in line]


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("model_family", "bogus", "'qwen3_vl'"),
        ("prompt_style", "foo", "'egm'"),
        ("mode", "sideways", "'amodal'"),
        ("image_reliability", "sometimes", "'best_effort'"),
    ],
)
def test_a_bad_start_up_value_is_one_error_line_and_no_engine_is_built(
    server, harness, capfd, monkeypatch, name: str, value: str, allowed: str
) -> None:
    # Issue 16, defect 2: read-only parameters were never checked; the node logged "loading
    # engine", then nothing, stayed unconfigured, and leaked the engine it had built.
    import egm_ros.node.grounding_node as grounding_node

    built: list = []
    monkeypatch.setattr(grounding_node, "create_engine", lambda s: built.append(s))
    node = harness.grounding_node(**node_params(server, **{name: value}))
    assert node._state_machine.current_state[1] == "unconfigured"
    assert node.engine is None and built == []
    assert name in node.engine_state and allowed in node.engine_state
    (line,) = _error_lines(capfd.readouterr().err, name)
    assert repr(value) in line and allowed in line


def test_a_failure_after_the_engine_is_built_closes_it(server, harness, monkeypatch) -> None:
    import egm_ros.node.grounding_node as grounding_node

    built: list = []

    def create(settings):
        built.append(grounding_node.create_engine.__wrapped__(settings))
        return built[-1]

    def broken_grounder(*args, **kwargs):
        raise RuntimeError("no grounder today")

    create.__wrapped__ = grounding_node.create_engine
    monkeypatch.setattr(grounding_node, "create_engine", create)
    monkeypatch.setattr(grounding_node, "Grounder", broken_grounder)
    node = harness.grounding_node(**node_params(server))
    assert node._state_machine.current_state[1] == "unconfigured"
    assert "no grounder today" in node.engine_state
    (engine,) = built
    assert engine._closed and node.engine is None


def test_run_time_values_pass_the_same_check(server, harness) -> None:
    node = harness.grounding_node(**node_params(server))
    bad, good = node.set_parameters(
        [Parameter("mode", value="sideways"), Parameter("max_new_tokens", value=64)]
    )
    assert not bad.successful
    assert bad.reason.startswith("parameter mode: 'sideways'") and "'amodal'" in bad.reason
    assert good.successful
    assert node.get_parameter("mode").value == "visible"
    assert node.path.grounder.config.sampling.max_new_tokens == 64


def test_a_best_effort_camera_with_reliable_image_qos_is_named_in_a_warning(
    server, harness, capfd
) -> None:
    node = harness.grounding_node("/cam", **node_params(server, image_reliability="reliable"))
    probe = harness.probe("/cam")  # its camera publishes best effort, as camera drivers do
    wait_for(lambda: probe.command_pub.get_subscription_count() > 0)
    err: list[str] = []

    def warned() -> bool:
        err.append(capfd.readouterr().err)
        return "grounding_node]: a publisher on /cam/image_raw" in "".join(err)

    probe.image_pub.publish(make_image(64, 48, stamp(1)))
    wait_for(warned, 20)
    ours = [line for line in "".join(err).splitlines() if "grounding_node]" in line]
    (line,) = [line for line in ours if "/cam/image_raw" in line]
    assert "WARN" in line and "incompatible" in line and "RELIABILITY" in line
    assert "image_reliability" in line
    assert len(node.path.frames) == 0  # nothing matched, so nothing arrived


# ---------------------------------------------------------------- issue 20: first contact
def _diagnostic(seen: list[DiagnosticArray], condition) -> tuple:
    """The first (status, values) published after now that meets ``condition``."""
    start = len(seen)
    found: list = []

    def met() -> bool:
        for array in seen[start:]:
            status = array.status[0]
            values = {kv.key: kv.value for kv in status.values}
            if condition(status, values):
                found.append((status, values))
                return True
        return False

    wait_for(met, 20)
    return found[0]


def _diagnostics(probe) -> list[DiagnosticArray]:
    seen: list[DiagnosticArray] = []
    probe.node.create_subscription(DiagnosticArray, "/diagnostics", seen.append, RELIABLE)
    return seen


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("max_new_tokens", 0, "int from 1 to 8192"),
        ("max_new_tokens", "many", "int from 1 to 8192"),
        ("temperature", True, "float from 0.0 to 2.0"),
        ("queue_size", 2000, "int from 1 to 1000"),
        ("autostart", "yes", "a bool"),
    ],
)
def test_a_value_rclpy_refuses_is_one_error_line_and_an_error_diagnostic(
    server, harness, capfd, monkeypatch, name: str, value, allowed: str
) -> None:
    # Issue 20, point 1: `-p max_new_tokens:=0` (out of the declared range) or a value of the
    # wrong type killed the node with a 20-line traceback from declare_parameter.
    import egm_ros.node.grounding_node as grounding_node

    built: list = []
    monkeypatch.setattr(grounding_node, "create_engine", lambda s: built.append(s))
    probe = harness.probe()
    seen = _diagnostics(probe)
    node = harness.grounding_node(**node_params(server, **{name: value}))
    assert node._state_machine.current_state[1] == "unconfigured" and built == []
    err = capfd.readouterr().err
    assert "Traceback" not in err
    (line,) = _error_lines(err, f"parameter {name}:")
    assert f"{value!r} is not allowed; {allowed}" in line
    status, values = _diagnostic(seen, lambda s, v: True)
    assert status.level == DiagnosticStatus.ERROR
    assert status.message.startswith(f"unconfigured: parameter {name}: {value!r}")
    assert values["engine_state"].startswith("failed: ")


def test_an_integer_where_a_double_is_declared_is_that_double(server, harness) -> None:
    # Issue 20, point 1: `-p temperature:=1` (the most common YAML slip) was a traceback.
    node = harness.grounding_node(**node_params(server, temperature=1, request_timeout=5))
    assert node._state_machine.current_state[1] == "active"
    assert node.get_parameter("temperature").value == 1.0
    assert node.get_parameter("request_timeout").type_ == Parameter.Type.DOUBLE
    assert node.path.grounder.config.sampling.temperature == 1.0
    (result,) = node.set_parameters([Parameter("frame_stamp_tolerance", value=2)])
    assert result.successful and node.get_parameter("frame_stamp_tolerance").value == 2.0


def test_a_refused_start_up_value_set_right_at_run_time_lets_configure_pass(
    server, harness
) -> None:
    node = harness.grounding_node(**node_params(server, max_new_tokens=0))
    assert node._state_machine.current_state[1] == "unconfigured"
    assert node.set_parameters([Parameter("max_new_tokens", value=64)])[0].successful
    node.trigger_configure()
    assert node._state_machine.current_state[1] == "inactive"


def test_diagnostics_follow_what_users_see(harness) -> None:
    # Issue 20, point 4: with no server the node logged "engine ready" and /diagnostics
    # stayed OK while every request failed.
    srv = ScriptedOpenAIServer(reply=egm_reply, model="EGM-test")
    srv.start()
    srv.stop()  # a free port, no server on it yet
    probe = harness.probe()
    seen = _diagnostics(probe)
    node = harness.grounding_node(
        **node_params(srv, frame_buffer_seconds=60.0, model="EGM-test", request_timeout=3.0)
    )
    assert node._state_machine.current_state[1] == "active"
    status, values = _diagnostic(seen, lambda s, v: v["engine_state"] == "active")
    assert status.level == DiagnosticStatus.ERROR
    assert status.message.startswith(f"engine unavailable: the server at {srv.base_url}")
    assert values["backend"] == "openai" and values["model"] == "EGM-test"
    with ScriptedOpenAIServer(reply=egm_reply, model="EGM-test", port=srv.port) as server:
        send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug")
        assert probe.wait_results(1)[0].status == GroundingResult.STATUS_OK
        status, values = _diagnostic(seen, lambda s, v: v["requests"] == "1")
        assert status.level == DiagnosticStatus.OK and values["last_engine_status"] == "ok"
        server.fail_status = 500
        probe.command_pub.publish(String(data="the mug"))
        assert probe.wait_results(2)[1].status == GroundingResult.STATUS_ENGINE_ERROR
        status, values = _diagnostic(seen, lambda s, v: v["requests"] == "2")
        assert status.level == DiagnosticStatus.WARN
        assert status.message.startswith("last request failed: engine_error:")
        assert "scripted failure" in status.message and "scripted failure" in values["last_error"]
    probe.command_pub.publish(String(data="the mug"))  # the server is gone
    assert probe.wait_results(3)[2].status == GroundingResult.STATUS_ENGINE_UNAVAILABLE
    status, _ = _diagnostic(seen, lambda s, v: v["requests"] == "3")
    assert status.level == DiagnosticStatus.ERROR and status.message.startswith(
        "engine unavailable:"
    )


def test_run_time_queue_size_resizes_the_queue(server, harness) -> None:
    # Issue 20, point 5: queue_size 1 set at run time, then 20 commands: 12 were accepted.
    server.hang = True  # the first command holds the only worker
    node = harness.grounding_node(**node_params(server, workers=1, request_timeout=30.0))
    probe = harness.probe()
    client = AsyncParameterClient(probe.node, "grounding_node")
    assert client.wait_for_services(60)
    future = client.set_parameters([Parameter("queue_size", value=1)])  # ros2 param set
    wait_for(future.done, 60)
    assert future.result().results[0].successful
    assert node.path.queue.maxsize == 1
    send_frame_and_command(probe, make_image(64, 48, stamp(1)), "the mug 0")
    wait_for(lambda: server.hits == 1)
    for i in range(1, 20):
        probe.command_pub.publish(String(data=f"the mug {i}"))
    busy = probe.wait_results(18)
    assert {r.status for r in busy} == {GroundingResult.STATUS_BUSY}
    assert all("(1 waiting)" in r.status_message for r in busy)
    server.hang = False
    server.stop()  # ends the held request


def test_a_goal_with_an_unknown_mode_is_rejected_not_aborted(server, harness) -> None:
    # Issue 20, point 9: it was accepted, then aborted.
    harness.grounding_node(**node_params(server))
    probe = harness.probe()
    client = ActionClient(probe.node, Ground, "ground")
    wait_for(client.server_is_ready)
    image = make_image(64, 48, stamp(1))
    future = client.send_goal_async(Ground.Goal(prompt="the mug", mode=7, image=image))
    wait_for(future.done)
    assert not future.result().accepted
    assert server.hits == 0
    client.destroy()
