"""The typed parameter table: every value is checked against its type and its choices or
range, with one line that names the parameter, the value and what is allowed."""

from __future__ import annotations

import pytest

from egm_ros.core.families import Family
from egm_ros.engines import BACKENDS
from egm_ros.node.parameters import PARAMETERS, Param, check_all


def test_every_default_passes_its_own_check() -> None:
    assert check_all({name: p.default for name, p in PARAMETERS.items()}) == []


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("model_family", "bogus", ["model_family", "'bogus'", "'qwen3_vl'", "'internvl3'"]),
        ("backend", "tensorflow", ["backend", "'openai'", "'embedded'"]),
        ("mode", "sideways", ["mode", "'visible'", "'amodal'"]),
        ("prompt_style", "foo", ["prompt_style", "'egm'", "'base'"]),
        ("image_reliability", "sometimes", ["image_reliability", "'best_effort'", "'reliable'"]),
        ("max_new_tokens", 0, ["max_new_tokens", "0", "int from 1 to 8192"]),
        ("temperature", 2.5, ["temperature", "2.5", "float from 0.0 to 2.0"]),
        ("workers", 65, ["workers", "65", "from 1 to 64"]),
        ("queue_size", "8", ["queue_size", "'8'", "int"]),
        ("verify_tls", "yes", ["verify_tls", "'yes'", "bool"]),
        ("cpu_threads", -1, ["cpu_threads", "-1", "int from 0 to 256"]),
    ],
)
def test_a_value_not_allowed_gives_one_line_naming_parameter_value_and_choices(
    name: str, value: object, words: list[str]
) -> None:
    (error,) = check_all({name: value})
    assert "\n" not in error
    assert error.startswith(f"parameter {name}: ")
    for word in words:
        assert word in error, (word, error)


def test_read_only_parameters_are_checked_like_the_others() -> None:
    read_only = [p for p in PARAMETERS.values() if p.read_only and (p.choices or p.limits)]
    assert {p.name for p in read_only} >= {"backend", "model_family", "prompt_style", "workers"}
    for param in read_only:
        assert param.error(object()) is not None


def test_the_choices_follow_the_code_they_name() -> None:
    assert PARAMETERS["backend"].choices == BACKENDS
    assert set(PARAMETERS["model_family"].choices) == {"", *(f.value for f in Family)}


def test_an_integer_is_accepted_where_a_double_is_declared_but_not_a_bool() -> None:
    assert PARAMETERS["temperature"].error(1) is None
    assert PARAMETERS["request_timeout"].error(30) is None
    assert PARAMETERS["temperature"].error(True) is not None
    assert PARAMETERS["max_new_tokens"].error(512.0) is not None
    assert PARAMETERS["max_new_tokens"].error(False) is not None


def test_limits_are_inclusive() -> None:
    param = Param("n", 5, "a number", limits=(1, 10))
    assert param.error(1) is None and param.error(10) is None
    assert param.error(11) is not None and param.error(0) is not None


def test_unknown_names_are_left_to_rclpy() -> None:
    assert check_all({"use_sim_time": True, "not_ours": "x"}) == []


def test_descriptors_carry_read_only_ranges_and_choices() -> None:
    pytest.importorskip("rcl_interfaces")
    from egm_ros.node.parameters import descriptor

    tokens = descriptor(PARAMETERS["max_new_tokens"])
    assert (tokens.integer_range[0].from_value, tokens.integer_range[0].to_value) == (1, 8192)
    assert not tokens.read_only
    temperature = descriptor(PARAMETERS["temperature"])
    assert temperature.floating_point_range[0].to_value == 2.0
    family = descriptor(PARAMETERS["model_family"])
    assert family.read_only and "'qwen3_vl'" in family.description


def test_cpu_threads_reach_the_engine_settings_and_hold_up_on_a_shared_cpu() -> None:
    from egm_ros.node.settings import engine_settings

    param = PARAMETERS["cpu_threads"]
    assert param.default == 1 and param.read_only  # one thread: see the README's benchmarks
    values = {name: p.default for name, p in PARAMETERS.items()}
    assert engine_settings(values).cpu_threads == 1
    assert engine_settings({**values, "cpu_threads": 0}).cpu_threads == 0  # torch's default
