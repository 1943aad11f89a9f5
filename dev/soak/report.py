"""The soak run's report: what was sent and received, by status and by kind, queue, latency
and memory, with the verdict (counts and memory only, never times), as JSON and as a table."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field

from dev.soak.driver import KINDS, Driver, Received, scripted
from dev.stats import percentiles


@dataclass
class Report:
    """What the soak measured; ``ok`` is the verdict (counts and memory only, never times)."""

    seconds: float
    backend: str
    engine: str
    image_hz: float
    command_hz: float
    image_size: str
    frames_published: int
    #: What the driver managed while commands ran (a starved CPU publishes less than asked).
    image_hz_achieved: float
    #: Frames the node's image callback took per second while commands ran (its
    #: ``frames_received`` in /diagnostics); below the published rate when its executor starves.
    image_hz_received: float | None
    command_hz_achieved: float
    sent: int
    received: int
    duplicates: int
    unmatched: int
    by_status: dict[str, int]
    errors_by_status: dict[str, int]
    by_kind: dict[str, dict]
    unexpected: int
    #: Why results differ from what the scripted server should cause (load, frame races).
    unexpected_why: dict[str, int]
    queue_high_water: int | None
    queue_size: int
    workers: int
    node_requests: int | None
    latency_ms: dict[str, dict[str, float]]
    #: Tokens generated per ok or not_found answer.
    generated_tokens: dict[str, float]
    #: The acceptance counts: well-formed commands, how many ended ok or not_found, and the
    #: no_frame results of commands without a frame_stamp.
    acceptance: dict[str, float]
    rss_mb: dict[str, float]
    #: (seconds since the first command, MB): at most about 60 samples of the node's RSS.
    rss_timeline_mb: list[tuple[float, float]]
    max_rss_growth_mb: float
    ok: bool
    problems: list[str] = field(default_factory=list)


def build_report(
    args: argparse.Namespace,
    driver: Driver,
    engine: str,
    rss: list[tuple[float, int]],
    warmup: float,
) -> Report:
    """The report of a finished run; ``rss`` is (seconds since the first command, kB)."""
    with driver._lock:
        received = list(driver.received)
        sent_by_kind = dict(driver.sent_by_kind)
        diagnostics = dict(driver.diagnostics)
        frames_seen = list(driver.frames_seen)
        duplicates, unmatched = driver.duplicates, driver.unmatched
    by_status = Counter(r.status for r in received)
    on_script = scripted(args)
    by_kind, unexpected = _by_kind(received, sent_by_kind, on_script)
    rss_mb = _rss_summary(rss, warmup)
    sent, got = sum(sent_by_kind.values()), len(received)
    t0, f0, t1, f1 = driver.window
    span = max(t1 - t0, 1e-9)
    acceptance = _acceptance(received)
    problems = _problems(sent, got, duplicates, unmatched, rss_mb["growth"], args)
    problems += _acceptance_problems(acceptance, args)
    hwm = diagnostics.get("queue_high_water")
    requests = diagnostics.get("requests")
    return Report(
        seconds=args.seconds,
        backend=args.backend,
        engine=engine,
        image_hz=args.image_hz,
        command_hz=args.command_hz,
        image_size=f"{args.width}x{args.height} rgb8",
        frames_published=driver.frame_count,
        image_hz_achieved=round((f1 - f0) / span, 1),
        image_hz_received=_rate_within(frames_seen, t0, t1),
        command_hz_achieved=round(sent / span, 2),
        sent=sent,
        received=got,
        duplicates=duplicates,
        unmatched=unmatched,
        by_status=dict(sorted(by_status.items())),
        errors_by_status={
            s: n for s, n in sorted(by_status.items()) if s not in ("OK", "NOT_FOUND")
        },
        by_kind=by_kind,
        unexpected=unexpected,
        unexpected_why=dict(driver.unexpected_why.most_common()) if on_script else {},
        queue_high_water=int(hwm) if hwm is not None else None,
        queue_size=args.queue_size,
        workers=args.workers,
        node_requests=int(requests) if requests is not None else None,
        latency_ms=_latency(received),
        generated_tokens=percentiles(
            [r.tokens for r in received if r.status in ("OK", "NOT_FOUND")]
        ),
        acceptance=acceptance,
        rss_mb=rss_mb,
        rss_timeline_mb=[
            (round(t, 1), round(kb / 1024, 1)) for t, kb in rss[:: max(1, len(rss) // 60)]
        ],
        max_rss_growth_mb=args.max_rss_growth_mb,
        ok=not problems,
        problems=problems,
    )


def _problems(
    sent: int,
    got: int,
    duplicates: int,
    unmatched: int,
    growth_mb: float,
    args: argparse.Namespace,
) -> list[str]:
    """What fails the run: a command without exactly one result, or memory that grew."""
    checks = (
        (sent != got, f"sent {sent} commands but received {got} results"),
        (duplicates, f"{duplicates} duplicate results"),
        (unmatched, f"{unmatched} results match no command"),
        (
            growth_mb > args.max_rss_growth_mb,
            f"node RSS grew {growth_mb} MB (limit {args.max_rss_growth_mb} MB)",
        ),
    )
    return [text for bad, text in checks if bad]


def _acceptance_problems(acceptance: dict[str, float], args: argparse.Namespace) -> list[str]:
    """The acceptance rules of a run with a model (issue 21), checked in every run."""
    problems = []
    share = acceptance["answered_share"]
    if acceptance["well_formed"] and share < args.min_answered:
        problems.append(
            f"{share:.1%} of {acceptance['well_formed']:g} well-formed commands ended ok or "
            f"not_found (at least {args.min_answered:.0%} wanted)"
        )
    if acceptance["no_frame_without_stamp"] > args.max_no_frame:
        problems.append(
            f"{acceptance['no_frame_without_stamp']:g} no_frame results for commands without a "
            f"frame_stamp (at most {args.max_no_frame} allowed)"
        )
    return problems


_STAMPED = {k.name for k in KINDS if k.stamped}
_WELL_FORMED = {k.name for k in KINDS if k.well_formed}


def _acceptance(received: list[Received]) -> dict[str, float]:
    well = [r for r in received if r.kind in _WELL_FORMED]
    answered = sum(r.status in ("OK", "NOT_FOUND") for r in well)
    return {
        "well_formed": len(well),
        "answered": answered,
        "answered_share": round(answered / len(well), 4) if well else 1.0,
        "no_frame_without_stamp": sum(
            r.status == "NO_FRAME" and r.kind not in _STAMPED for r in received
        ),
    }


def _rate_within(samples: list[tuple[float, int]], t0: float, t1: float) -> float | None:
    """Per second, between the first and last (time, count) samples inside [t0, t1]."""
    inside = [(t, n) for t, n in samples if t0 <= t <= t1] if t1 > t0 else []
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return round((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]), 1)


def _by_kind(
    received: list[Received], sent_by_kind: dict[str, int], on_script: bool
) -> tuple[dict[str, dict], int]:
    """Per kind: sent, received, ``ok`` results, whether it is well-formed, the status the
    scripted server should cause, the statuses seen; and how many results differ from that
    status (scripted server only)."""
    by_kind: dict[str, dict] = {}
    unexpected = 0
    for kind in KINDS:
        if kind.name not in sent_by_kind:
            continue
        statuses = Counter(r.status for r in received if r.kind == kind.name)
        if on_script:
            unexpected += sum(n for s, n in statuses.items() if s != kind.expected)
        by_kind[kind.name] = {
            "sent": sent_by_kind[kind.name],
            "received": sum(statuses.values()),
            "ok": statuses.get("OK", 0),
            "well_formed": kind.well_formed,
            "expected": kind.expected if on_script else "-",
            "statuses": dict(sorted(statuses.items())),
        }
    return by_kind, unexpected


def _latency(received: list[Received]) -> dict[str, dict[str, float]]:
    """Round trips, the node's own time, how old the frame an answer is about was when its
    command went out, and the time outside the node (the command's and the result's delivery,
    i.e. the node's executor and DDS)."""
    unstamped = [r for r in received if r.kind not in _STAMPED]
    return {
        "round_trip_ok": percentiles([r.rtt_ms for r in received if r.status == "OK"]),
        "round_trip_all": percentiles([r.rtt_ms for r in received]),
        "node_total_ok": percentiles([r.node_ms for r in received if r.status == "OK"]),
        "frame_age_at_command": percentiles(
            [r.frame_age_ms for r in unstamped if r.frame_age_ms is not None]
        ),
        "outside_node": percentiles([max(0.0, r.rtt_ms - r.node_ms) for r in received]),
    }


def _rss_summary(rss: list[tuple[float, int]], warmup: float) -> dict[str, float]:
    """The start sample is the first after the warm-up (imports, caches and the frame buffer
    filling up are start-up, not growth); a run shorter than its warm-up uses its first."""
    after = [kb for t, kb in rss if t >= warmup] or [kb for _, kb in rss] or [0]
    start_kb, end_kb = after[0], after[-1]
    return {
        "start": round(start_kb / 1024, 1),
        "end": round(end_kb / 1024, 1),
        "max": round(max(after) / 1024, 1),
        "growth": round((end_kb - start_kb) / 1024, 1),
        "first_sample": round(rss[0][1] / 1024, 1) if rss else 0.0,
    }


def format_report(report: Report) -> str:
    """The report as plain-text tables."""
    lines = [
        f"egm_ros soak: {report.seconds:g} s, {report.engine}",
        f"  frames {report.image_size}: {report.image_hz:g} Hz asked, "
        f"{report.image_hz_achieved:g} Hz achieved ({report.frames_published} published), "
        f"{report.image_hz_received} Hz taken by the node; "
        f"commands: {report.command_hz:g}/s asked, {report.command_hz_achieved:g}/s achieved",
        "",
        f"  commands sent      {report.sent}",
        f"  results received   {report.received}"
        + ("   (equal)" if report.sent == report.received else "   (NOT EQUAL)"),
        f"  duplicates / unmatched results  {report.duplicates} / {report.unmatched}",
        f"  queue high-water   {report.queue_high_water} (queue_size {report.queue_size} + "
        f"workers {report.workers})",
        f"  node RSS (MB)      start {report.rss_mb['start']} (after warm-up; first sample "
        f"{report.rss_mb['first_sample']})  end {report.rss_mb['end']}  max "
        f"{report.rss_mb['max']}  growth {report.rss_mb['growth']:+}",
        "",
        "  results by status:",
    ]
    lines += [f"    {s:<20} {n:>7}" for s, n in report.by_status.items()]
    lines += ["", f"  {'kind':<26}{'sent':>6}{'recv':>6}{'ok':>6}  {'expected':<19} statuses"]
    for name, row in report.by_kind.items():
        statuses = ", ".join(f"{s} {n}" for s, n in row["statuses"].items())
        lines.append(
            f"  {name:<26}{row['sent']:>6}{row['received']:>6}{row['ok']:>6}  "
            f"{row['expected']:<19} {statuses}"
        )
    acc = report.acceptance
    lines += [
        "",
        f"  well-formed commands {acc['well_formed']:g}: ok or not_found {acc['answered']:g} "
        f"({acc['answered_share']:.1%}); no_frame without a frame_stamp: "
        f"{acc['no_frame_without_stamp']:g}",
        f"  generated tokens per answer: {report.generated_tokens}",
    ]
    lines += [
        "",
        f"  {'latency (ms)':<26}{'p50':>8}{'p90':>8}{'p95':>8}{'p99':>8}{'max':>8}{'n':>7}",
    ]
    for name, p in report.latency_ms.items():
        if p:
            lines.append(
                f"  {name:<26}{p['p50']:>8}{p['p90']:>8}{p['p95']:>8}{p['p99']:>8}{p['max']:>8}"
                f"{p['n']:>7}"
            )
    lines += [
        "",
        f"  results with another status than the scripted server should cause: {report.unexpected}",
        *(f"    {n:>6}  {why}" for why, n in report.unexpected_why.items()),
        "  verdict: " + ("PASS" if report.ok else "FAIL: " + "; ".join(report.problems)),
    ]
    return "\n".join(lines)
