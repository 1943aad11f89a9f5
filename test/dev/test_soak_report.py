"""The soak report's acceptance counts, rates and per-kind rows, from results made by hand."""

from __future__ import annotations

import argparse

from dev.soak.driver import Received
from dev.soak.report import _acceptance, _acceptance_problems, _by_kind, _rate_within


def got(kind: str, status: str) -> Received:
    return Received(kind, status, rtt_ms=100.0, node_ms=80.0, frame_age_ms=30.0, tokens=50)


def test_acceptance_counts_well_formed_answers_and_unstamped_no_frame() -> None:
    received = (
        [got("ok", "OK")] * 7
        + [got("ok_amodal", "NOT_FOUND"), got("ok_string", "BUSY"), got("ok", "NO_FRAME")]
        + [got("no_frame_near_stamp", "NO_FRAME"), got("wrong_encoding", "NO_FRAME")]
        + [got("empty_command", "INVALID_INPUT")]
    )
    acceptance = _acceptance(received)
    assert acceptance == {
        "well_formed": 10,
        "answered": 8,
        "answered_share": 0.8,
        "no_frame_without_stamp": 1,  # the "ok" one; the stamped kinds may find none
    }
    rules = argparse.Namespace(min_answered=0.9, max_no_frame=0)
    problems = _acceptance_problems(acceptance, rules)
    assert len(problems) == 2
    assert "80.0% of 10 well-formed" in problems[0] and "1 no_frame" in problems[1]
    rules = argparse.Namespace(min_answered=0.8, max_no_frame=1)
    assert _acceptance_problems(acceptance, rules) == []


def test_ok_is_counted_per_kind() -> None:
    received = [got("ok", "OK"), got("ok", "NOT_FOUND"), got("empty_command", "INVALID_INPUT")]
    rows, unexpected = _by_kind(received, {"ok": 2, "empty_command": 1}, on_script=False)
    assert rows["ok"]["ok"] == 1 and rows["ok"]["well_formed"] is True
    assert rows["empty_command"]["ok"] == 0 and rows["empty_command"]["well_formed"] is False
    assert unexpected == 0 and rows["ok"]["expected"] == "-"


def test_the_nodes_frame_rate_comes_from_its_counter_inside_the_command_window() -> None:
    samples = [(0.0, 0), (10.0, 100), (12.0, 120), (20.0, 280), (30.0, 900)]
    assert _rate_within(samples, 10.0, 20.0) == 18.0  # (280 - 100) / 10 s
    assert _rate_within(samples, 10.0, 11.0) is None  # one sample is no rate
