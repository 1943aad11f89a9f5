"""The goals table and the printed tables of a ``bench.json`` report (``make bench`` prints
them; the README's tables are the Markdown form). No ROS, no model: unit-tested on made-up
reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dev.bench import depth_step, overhead
from dev.bench.report import format_table, goal, markdown_table

Fmt = Callable[..., str]
#: Issue 17's goals for compressed frames, at the node's default max_pixels (decoded, resized,
#: encoded), with max_pixels 0 and with server_max_pixels (the JPEG goes to the server as it is).
COMPRESSED_GOALS_MS = {
    (resolution, kind): limit
    for kind in ("compressed", "compressed, max_pixels 0", "compressed, server_max_pixels")
    for resolution, limit in (("1920x1080", 5.0), ("3840x2160", 12.0))
}
#: Sections that may hold ``{"skipped": reason}`` instead of numbers.
OPTIONAL = ("end_to_end", "concurrency", "memory", "multi_node", "side_by_side")


# --------------------------------------------------------------------------- goals
def goals(report: dict[str, Any]) -> list[dict]:
    """Every goal the report has numbers for, met or not."""
    section = report["overhead"] if isinstance(report["overhead"], dict) else {}
    return (
        _overhead_goals(section.get("rows", []))
        + _depth_goals(section.get("depth_3d", {}))
        + _round_trip_goals(report)
        + _multi_node_goals(report["multi_node"])
    )


def _overhead_goals(rows: list[dict]) -> list[dict]:
    out = []
    hd = {r["input"]: r for r in rows if r["resolution"] == "1920x1080"}
    if "raw" in hd:
        p50 = hd["raw"]["p50_ms"]
        out.append(goal("node overhead 1920x1080 raw, p50", "<= 5 ms", p50, p50 <= 5.0))
        cpu = hd["raw"].get("cpu_p50_ms")
        if cpu is not None:  # the work itself, when waiting for a busy core inflates the wall
            out.append(goal("node overhead 1920x1080 raw, CPU p50", "<= 5 ms", cpu, cpu <= 5.0))
    for (resolution, kind), limit in COMPRESSED_GOALS_MS.items():
        for r in rows:
            if (r["resolution"], r["input"]) == (resolution, kind):
                p50 = r["p50_ms"]
                what = f"node overhead {resolution} {kind}, p50"
                out.append(goal(what, f"<= {limit:g} ms", p50, p50 <= limit))
    for kind in ("raw", "compressed"):
        copies = [r["full_frame_copies"] for r in rows if r["input"] == kind]
        if copies:
            worst = max(copies)
            out.append(goal(f"full-frame copies per request, {kind}", "<= 1", worst, worst <= 1))
    return out


def _depth_goals(depth: dict[str, Any]) -> list[dict]:
    if not depth.get("rows"):
        return []
    worst = max(r["p50_ms"] for r in depth["rows"])
    target = f"<= {depth['goal_p50_ms']:g} ms"
    met = worst <= depth["goal_p50_ms"]
    return [goal("3D step 640x480 (use_depth), p50, worst row", target, worst, met)]


def _round_trip_goals(report: dict[str, Any]) -> list[dict]:
    """Outside the node per engine, batching, and egm_ros against a plain client."""
    out = []
    for name, sec in report["end_to_end"].items():
        p95 = sec.get("outside_node_ms", {}).get("p95")
        if p95 is not None:
            what = f"round trip outside the node, {name}, p95"
            out.append(goal(what, "<= 15 ms", p95, p95 <= 15))
    tp = {r["in_flight"]: r["throughput_rps"] for r in report["concurrency"].get("embedded", [])}
    if tp.get(1) and tp.get(4):
        ratio = round(tp[4] / tp[1], 2)
        what = "throughput 4 in flight / 1 in flight, embedded"
        out.append(goal(what, ">= 2x", ratio, ratio >= 2))
    ratio = report.get("side_by_side", {}).get("amodal_latency_ratio_p50")
    if ratio is not None:
        what = "amodal p50, egm_ros / plain openai client, 1 in flight"
        out.append(goal(what, "<= 0.6", ratio, ratio <= 0.6))
    return out


def _multi_node_goals(multi: dict[str, Any]) -> list[dict]:
    if "results_correct" not in multi:
        return []
    ratio = multi["shared_over_alone_p50"]
    return [
        goal(
            f"{multi['nodes']} nodes on one server: each gets its own results",
            "all correct",
            multi["answers_identical_to_alone"] + " identical to alone",
            multi["results_correct"],
        ),
        goal(
            "shared-server latency degrades gracefully (p50 shared / alone)",
            f"< {multi['nodes']} (better than serialising)",
            ratio,
            ratio is not None and ratio < multi["nodes"],
        ),
    ]


# --------------------------------------------------------------------------- tables
def tables(report: dict[str, Any], markdown: bool = False) -> str:
    """Every section as a table (Markdown with ``markdown``), skipped ones named."""
    fmt: Fmt = markdown_table if markdown else format_table
    meta = report["meta"]
    parts = [
        f"model: {meta['model']['name']} ({meta['model']['weights']}); "
        f"max_new_tokens {meta['max_new_tokens']}; {meta['machine']}; load average (1, 5, 15 "
        f"min) {meta.get('load_average_at_start')} at start, {meta.get('load_average_at_end')} "
        "at end"
    ]
    if "rows" in report["overhead"]:
        parts.append("node overhead without the model\n" + overhead.table(report["overhead"], fmt))
    if "depth_3d" in report["overhead"]:
        parts.append(
            "3D step (use_depth)\n" + depth_step.table(report["overhead"]["depth_3d"], fmt)
        )
    parts += _end_to_end_tables(report, fmt)
    parts += _multi_node_table(report["multi_node"], fmt)
    parts += _side_by_side_table(report.get("side_by_side", {}), fmt)
    if report["goals"]:
        rows = [(g["goal"], g["target"], g["measured"], g["met"]) for g in report["goals"]]
        parts.append("goals\n" + fmt(("goal", "target", "measured", "met"), rows))
    for name in OPTIONAL:
        if "skipped" in report.get(name, {}):
            parts.append(f"{name}: skipped ({report[name]['skipped']})")
    return "\n\n".join(parts)


def _end_to_end_tables(report: dict[str, Any], fmt: Fmt) -> list[str]:
    """End to end with its split, concurrency, memory."""
    parts = []
    e2e_rows = [
        (
            name,
            sec["end_to_end"].get("n"),
            sec["end_to_end"].get("p50_ms"),
            sec["end_to_end"].get("p95_ms"),
            sec["split_p50_ms"]["waiting"],
            sec["split_p50_ms"]["preprocessing"],
            sec["split_p50_ms"]["inference"],
            sec.get("outside_node_ms", {}).get("p50"),
            sec.get("outside_node_ms", {}).get("p95"),
            sec["tokens_mean"],
        )
        for name, sec in report["end_to_end"].items()
        if "end_to_end" in sec
    ]
    if e2e_rows:
        headers = ("engine", "n", "p50 ms", "p95 ms", "wait", "preproc", "infer")
        headers += ("outside p50", "outside p95", "tok")
        parts.append(
            "end to end through ROS topics (wait, preproc, infer: p50 ms; outside the node: "
            "the round trip less the node's total)\n" + fmt(headers, e2e_rows)
        )
    conc_rows = [
        (name, r["in_flight"], r["throughput_rps"], r.get("x_of_1_in_flight"))
        + (r["p50_ms"], r["p95_ms"], r.get("tokens_mean"))
        for name, rows in report["concurrency"].items()
        if isinstance(rows, list)
        for r in rows
    ]
    if conc_rows:
        headers = ("engine", "in flight", "req/s", "x of 1", "p50 ms", "p95 ms", "tok")
        parts.append("concurrency\n" + fmt(headers, conc_rows))
    mem = report["memory"]
    if "node_peak_rss_mb" in mem:
        parts.append(
            f"grounding node peak RSS with the embedded model: {mem['node_peak_rss_mb']} MB"
        )
    return parts


def _multi_node_table(multi: dict[str, Any], fmt: Fmt) -> list[str]:
    if "alone" not in multi:
        return []
    rows = [
        (run, multi[run].get("n"), multi[run].get("p50_ms"), multi[run].get("p95_ms"))
        for run in ("alone", "shared")
    ]
    return [
        f"{multi['nodes']} nodes, one vLLM server: results correct "
        f"{multi['results_correct']}, answers identical to alone "
        f"{multi['answers_identical_to_alone']}\n" + fmt(("run", "n", "p50 ms", "p95 ms"), rows)
    ]


def _side_by_side_table(pair: dict[str, Any], fmt: Fmt) -> list[str]:
    if "plain_client" not in pair:
        return []
    rows = [
        (name, r["in_flight"], r["p50_ms"], r["p95_ms"], r["throughput_rps"], r["tokens_mean"])
        for name in ("plain_client", "egm_ros")
        for r in pair[name]
    ]
    return [
        f"side by side on one vLLM server, {pair['mode']} requests: egm_ros / plain p50 "
        f"{pair['amodal_latency_ratio_p50']} at 1 in flight; boxes identical "
        f"{pair['identical_answers']}\n"
        + fmt(("client", "in flight", "p50 ms", "p95 ms", "req/s", "tok"), rows)
    ]
