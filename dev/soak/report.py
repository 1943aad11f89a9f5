"""The soak run's report: what was sent and received, by status and by kind, queue, latency
and memory, with the verdict (counts and memory only, never times), as JSON and as a table."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field

from dev.soak.driver import KINDS, Driver
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
        duplicates, unmatched = driver.duplicates, driver.unmatched
    by_status = Counter(status for _, status, _, _ in received)
    scripted = args.backend == "openai" and not args.base_url
    by_kind, unexpected = _by_kind(received, sent_by_kind, scripted)
    rss_mb = _rss_summary(rss, warmup)
    sent, got = sum(sent_by_kind.values()), len(received)
    t0, f0, t1, f1 = driver.window
    span = max(t1 - t0, 1e-9)
    problems = _problems(sent, got, duplicates, unmatched, rss_mb["growth"], args)
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
        unexpected_why=dict(driver.unexpected_why.most_common()) if scripted else {},
        queue_high_water=int(hwm) if hwm is not None else None,
        queue_size=args.queue_size,
        workers=args.workers,
        node_requests=int(requests) if requests is not None else None,
        latency_ms=_latency(received),
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


Received = list[tuple[str, str, float, float]]  # kind, status, round trip ms, node total ms


def _by_kind(
    received: Received, sent_by_kind: dict[str, int], scripted: bool
) -> tuple[dict[str, dict], int]:
    """Per kind: sent, received, the status the scripted server should cause, the statuses
    seen; and how many results differ from that status (scripted server only)."""
    by_kind: dict[str, dict] = {}
    unexpected = 0
    for kind in KINDS:
        if kind.name not in sent_by_kind:
            continue
        statuses = Counter(s for k, s, _, _ in received if k == kind.name)
        if scripted:
            unexpected += sum(n for s, n in statuses.items() if s != kind.expected)
        by_kind[kind.name] = {
            "sent": sent_by_kind[kind.name],
            "received": sum(statuses.values()),
            "expected": kind.expected if scripted else "-",
            "statuses": dict(sorted(statuses.items())),
        }
    return by_kind, unexpected


def _latency(received: Received) -> dict[str, dict[str, float]]:
    return {
        "round_trip_ok": percentiles([rtt for _, s, rtt, _ in received if s == "OK"]),
        "round_trip_all": percentiles([rtt for _, _, rtt, _ in received]),
        "node_total_ok": percentiles([ms for _, s, _, ms in received if s == "OK"]),
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
        f"{report.image_hz_achieved:g} Hz achieved ({report.frames_published} published); "
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
    lines += ["", f"  {'kind':<26}{'sent':>6}{'recv':>6}  {'expected':<19} statuses"]
    for name, row in report.by_kind.items():
        statuses = ", ".join(f"{s} {n}" for s, n in row["statuses"].items())
        lines.append(
            f"  {name:<26}{row['sent']:>6}{row['received']:>6}  {row['expected']:<19} {statuses}"
        )
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
