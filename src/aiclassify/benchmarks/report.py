"""The benchmark's report: API-over-baseline ratios, the serving goals, plain-text tables, the machine."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from pathlib import Path

REFERENCE_COLUMNS = [
    "when",
    "single_forward_ms",
    "single_forward_mean_ms",
    "single_calls",
    "batch8_forward_ips",
    "batched_forward_ips",
]
LOAD_COLUMNS = [
    "server",
    "concurrency",
    "requests",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "server_p50_ms",
    "throughput_rps",
    "client_cpu_fraction",
    "server_cpu_fraction",
    "loadavg_1m",
]
RATIO_COLUMNS = ["concurrency", "throughput_api_over_baseline", "p50_baseline_over_api"]
FAULT_COLUMNS = [
    "concurrency",
    "requests",
    "valid_sent",
    "valid_ok",
    "valid_lost",
    "faulty_sent",
    "unexpected_fault_answers",
    "server_errors_seen",
    "server_errors_counted",
    "server_log_errors",
    "p50_ms",
    "p99_ms",
    "valid_throughput_rps",
]
GOAL_COLUMNS = ["goal", "measured", "target", "unit", "met"]
FACE_LOAD_COLUMNS = [
    "model",
    "concurrency",
    "requests",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "server_p50_ms",
    "throughput_rps",
    "faces_per_request",
    "server_detection_p50_ms",
    "face_searches_failed",
    "client_cpu_fraction",
    "server_cpu_fraction",
    "loadavg_1m",
]
FACE_RATIO_COLUMNS = [
    "concurrency",
    "throughput_auto_over_general",
    "p50_auto_over_general",
    "p95_auto_over_general",
]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing, NaN or the denominator is 0."""
    if numerator is None or denominator is None or math.isnan(numerator) or math.isnan(denominator):
        return None
    return numerator / denominator if denominator else None


def ratio_rows(loads: list[dict]) -> list[dict]:
    """Per concurrency level: API throughput / baseline throughput and baseline p50 / API p50."""
    by_key = {(load["server"], load["concurrency"]): load for load in loads}
    rows = []
    for concurrency in sorted({load["concurrency"] for load in loads}):
        api, base = by_key.get(("api", concurrency)), by_key.get(("baseline", concurrency))
        if api and base:
            rows.append(
                {
                    "concurrency": concurrency,
                    "throughput_api_over_baseline": ratio(api["throughput_rps"], base["throughput_rps"]),
                    "p50_baseline_over_api": ratio(base["p50_ms"], api["p50_ms"]),
                }
            )
    return rows


def face_ratio_rows(loads: list[dict]) -> list[dict]:
    """Per concurrency level of the face mode: ``model=auto`` over ``model=general`` in throughput,
    p50 and p95 latency (what searching and scoring the faces costs)."""
    by_key = {(load["model"], load["concurrency"]): load for load in loads}
    rows = []
    for concurrency in sorted({load["concurrency"] for load in loads}):
        auto, general = by_key.get(("auto", concurrency)), by_key.get(("general", concurrency))
        if auto and general:
            rows.append(
                {
                    "concurrency": concurrency,
                    "throughput_auto_over_general": ratio(auto["throughput_rps"], general["throughput_rps"]),
                    "p50_auto_over_general": ratio(auto["p50_ms"], general["p50_ms"]),
                    "p95_auto_over_general": ratio(auto["p95_ms"], general["p95_ms"]),
                }
            )
    return rows


def goal_rows(loads: list[dict], goal_requests: int = 10_000) -> list[dict]:
    """The serving goals, each with its measured value, target and whether it is met.

    Each load carries ``reference``: the bare forward figures measured just before and after it.
    """
    by_key = {(load["server"], load["concurrency"]): load for load in loads}
    rows = []
    api1, api32, base32 = by_key.get(("api", 1)), by_key.get(("api", 32)), by_key.get(("baseline", 32))
    if api1:
        target = api1["reference"]["single_forward_ms"] + 5
        rows.append(
            {
                "goal": "p50 at concurrency 1 <= bare single forward + 5 ms",
                "measured": api1["p50_ms"],
                "target": target,
                "unit": "ms",
                "met": api1["p50_ms"] <= target,
            }
        )
    if api32:
        target = 0.7 * api32["reference"]["batched_forward_ips"]
        rows.append(
            {
                "goal": "throughput at concurrency 32 >= 0.7 x batched forward",
                "measured": api32["throughput_rps"],
                "target": target,
                "unit": "req/s",
                "met": api32["throughput_rps"] >= target,
            }
        )
        if base32:
            measured = ratio(api32["throughput_rps"], base32["throughput_rps"])
            rows.append(
                {
                    "goal": "throughput at concurrency 32 >= 5 x baseline",
                    "measured": measured,
                    "target": 5.0,
                    "unit": "x",
                    "met": measured is not None and measured >= 5,
                }
            )
        rows.append(
            {
                "goal": f"zero errors over {goal_requests} requests at concurrency 32",
                "measured": api32["errors"],
                "target": 0,
                "unit": f"errors in {api32['requests']}",
                "met": False if api32["errors"] else (True if api32["requests"] >= goal_requests else None),
            }
        )  # None: too few requests
    return rows


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table of ``rows`` (floats to 4 significant digits, booleans as yes/no)."""

    def cell(value):
        """One value as text."""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.4g}"
        return "-" if value is None else str(value)

    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(r[i]) for r in cells]) for i, column in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def print_report(results: dict) -> None:
    """The tables of ``results``: machine and settings, references, loads, ratios and goals."""
    settings = results["settings"]
    print(
        f"\n{results['date']}  {results['machine']['platform']}, {results['machine']['cpu_count']} CPUs, "
        f"commit {results['commit']}\n{settings['run']} ({settings['model_input']}x{settings['model_input']} "
        f"input), uploads: {settings['uploads']}, gunicorn {settings['gunicorn']}\n"
    )
    print(format_table(results["reference"], REFERENCE_COLUMNS), end="\n\n")
    print(format_table(results["loads"], LOAD_COLUMNS), end="\n\n")
    if results["ratios"]:
        print(format_table(results["ratios"], RATIO_COLUMNS), end="\n\n")
    print(format_table(results["goals"], GOAL_COLUMNS))


def print_face_report(results: dict) -> None:
    """The tables of a face-mode run: machine and settings, detection latency, loads, ratios."""
    from aiclassify.benchmarks.detection import LATENCY_COLUMNS

    settings, detection = results["settings"], results["detection"]
    limits = ", ".join(f"{name} {value}" for name, value in detection["limits"].items())
    print(
        f"\n{results['date']}  {results['machine']['platform']}, {results['machine']['cpu_count']} CPUs, "
        f"commit {results['commit']}\nfaces={settings['faces_run']}, general={settings['general_run']}, "
        f"gunicorn {settings['gunicorn']}\nuploads: {settings['uploads']} "
        f"({settings['upload_bytes_mean'] / 1024:.0f} KB mean)\ndetector ({limits}) loaded in "
        f"{detection['detector_load_s']:.1f} s; latency scenes: {settings['detection_photo']}\n"
    )
    print(format_table(detection["latency"], LATENCY_COLUMNS), end="\n\n")
    print(format_table(results["face_loads"], FACE_LOAD_COLUMNS), end="\n\n")
    print(format_table(results["face_ratios"], FACE_RATIO_COLUMNS))


def print_values(results: dict) -> None:
    """One ``name  value`` line per result (floats to 4 significant digits, lists joined)."""
    for key, value in results.items():
        if isinstance(value, list):
            value = ", ".join(f"{item:.4g}" if isinstance(item, float) else str(item) for item in value)
        print(f"{key:<40} {value:.4g}" if isinstance(value, float) else f"{key:<40} {value}")


def write_results(results: dict, path: Path) -> None:
    """``results`` as indented JSON at ``path`` (its folder made when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def git_commit(workdir: Path | None = None) -> str:
    """``git rev-parse --short HEAD`` in ``workdir`` (default: the current folder), or ``unknown``."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict:
    """Platform, CPU count and library versions (read without importing TensorFlow)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("tensorflow", "keras", "flask", "gunicorn"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "cpu",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        **versions,
    }


def fault_goal_rows(loads: list[dict], goal_requests: int = 10_000) -> list[dict]:
    """Per fault load: no valid request lost and no server error (None: fewer than ``goal_requests``)."""
    rows = []
    for load in loads:
        failures = load["valid_lost"] + load["server_errors_seen"] + (load.get("server_errors_counted") or 0)
        enough = load["requests"] >= goal_requests
        rows.append(
            {
                "goal": f"0 valid requests lost and 0 5xx at concurrency {load['concurrency']}, some faulty",
                "measured": f"{load['valid_lost']} lost, {load['server_errors_seen']} 5xx",
                "target": 0,
                "unit": f"of {load['valid_sent']} valid in {load['requests']}",
                "met": False if failures else (True if enough else None),
            }
        )
    return rows


def print_fault_report(results: dict) -> None:
    """The tables of a fault-tolerance run: totals per level, each fault's answers, the goals."""
    settings = results["settings"]
    print(
        f"\n{results['date']}  {results['machine']['platform']}, {results['machine']['cpu_count']} CPUs, "
        f"commit {results['commit']}\n{settings['run']}, uploads: {settings['uploads']}, "
        f"gunicorn {settings['gunicorn']}, fault rate {settings['fault_rate']:g} "
        f"(seed {settings['fault_seed']}), upload limit {settings['max_upload_mb']:g} MB\n"
    )
    print(format_table(results["fault_loads"], FAULT_COLUMNS), end="\n\n")
    rows = [
        {"concurrency": load["concurrency"], "fault": kind, "answers": answers}
        for load in results["fault_loads"]
        for kind, answers in load["fault_statuses"].items()
    ]
    print(format_table(rows, ["concurrency", "fault", "answers"]), end="\n\n")
    for load in results["fault_loads"]:
        for example in load["lost_examples"]:
            print(f"lost at c={load['concurrency']}: {example}")
    print(format_table(fault_goal_rows(results["fault_loads"]), GOAL_COLUMNS))
