"""Serving benchmark: the inference API under gunicorn against the seed-style baseline, side by side.

    python scripts/bench_serve.py --run runs/demo [--requests 2000] [--levels 1,8,32] [--out FILE.json]
    python scripts/bench_serve.py --run runs/bench-faces224 --requests 300 --baseline-requests 100 \
        --warmup 8 --image-dir DIR      # a slow, compute-bound model (cnn5 at 224x224): fewer requests

In one run, on 127.0.0.1 only: starts the API (``aiclassify.serving.app:create_app()``) and the
baseline (``scripts/baseline_app.py``: upload saved to disk, ``keras.utils.load_img``, one
``model.predict`` per request on ``model.keras``) under gunicorn with the same settings
(``--workers``, ``--threads``); measures the run's SavedModel in a separate process without HTTP
(bare single-image forward time; batched forward throughput; each loop for at most
``--forward-seconds``, so a slow model is measured the same way in bounded time) before and after
each concurrency level, and for each level sends ``--requests`` multipart ``POST /predict``
requests to the API and ``--baseline-requests`` (default a tenth: it is that much slower) to the
baseline, in a bounded loop over keep-alive ``http.client`` connections, one per client thread,
and reports p50/p95/p99 latency, throughput, errors, the CPU used by client and server, the
ratios, and whether the goals of issue 8 are met. Both servers are stopped at the end, also on
errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300  # two gunicorn workers importing TensorFlow at once on 2 busy cores
DEFAULT_THREADS = 32  # as `make serve`: measured best on 2 cores (docs/performance.md)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
BOUNDARY = "aiclassify-bench-3f1c"


# --- pure helpers (tested in tests/test_bench_serve.py) -------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation, as numpy's default; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(latencies_s: list[float], errors: list[str], wall_s: float) -> dict:
    """Latency percentiles (ms), throughput (successful requests/s) and error count of one load."""
    return {
        "requests": len(latencies_s) + len(errors),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p95_ms": percentile(latencies_s, 95) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "mean_ms": statistics.fmean(latencies_s) * 1000 if latencies_s else math.nan,
        "throughput_rps": len(latencies_s) / wall_s if wall_s > 0 else math.nan,
        "wall_s": wall_s,
    }


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


def goal_rows(loads: list[dict], goal_requests: int = 10_000) -> list[dict]:
    """The goals of issue 8, each with its measured value, target and whether it is met.

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


def multipart_body(image: bytes, filename: str, boundary: str = BOUNDARY) -> bytes:
    """A ``multipart/form-data`` body with ``image`` in field ``file``, parts split by ``boundary``."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    return head.encode() + image + f"\r\n--{boundary}--\r\n".encode()


# --- servers --------------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One gunicorn process on 127.0.0.1, started by :meth:`start` and always ended by :meth:`stop`."""

    def __init__(
        self,
        name: str,
        app: str,
        env: dict[str, str],
        ready_path: str,
        threads: int,
        extra: tuple[str, ...] = (),
        workers: int = 1,
    ):
        self.name, self.ready_path, self.port = name, ready_path, free_port()
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "120",
            *extra,
            app,
        ]
        self.env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Launch gunicorn (does not wait)."""
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, env=self.env, stdout=output, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Poll ``ready_path`` until it answers 200; raise with the log tail if gunicorn dies or stalls."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: gunicorn exited with {self.process.returncode}:\n"
                    f"{self.log.read_text()[-3000:]}"
                )
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", self.ready_path)
                if connection.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            time.sleep(0.5)
        raise RuntimeError(f"{self.name}: not ready in {timeout_s:.0f} s:\n{self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the gunicorn master and its workers so far (Linux /proc)."""
        total, pids = 0.0, [self.process.pid]
        while pids:
            pid = pids.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
        return total

    def stop(self) -> None:
        """Terminate gunicorn (kill after 15 s) and remove its log."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.unlink(missing_ok=True)


# --- load and reference ---------------------------------------------------------------------------


def run_load(port: int, images: list[bytes], total: int, concurrency: int, timeout_s: float = 60) -> dict:
    """Send ``total`` requests from ``concurrency`` threads (one keep-alive connection each).

    Each request gets its own multipart boundary, as curl and requests do: Werkzeug compiles its
    parser's regular expressions per boundary, so a fixed one would flatter the server.
    """
    lock, issued = threading.Lock(), [0]

    def client() -> tuple[list[float], list[str]]:
        latencies, errors, server_ms, connection = [], [], [], None
        while True:
            with lock:
                index, issued[0] = issued[0], issued[0] + 1
            if index >= total:
                break
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
                boundary = f"{BOUNDARY}-{time.monotonic_ns():x}-{index}"
                which = index % len(images)
                body = multipart_body(images[which], f"bench-{which}.jpg", boundary)
                connection.request(
                    "POST",
                    "/predict",
                    body=body,
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                )
                response = connection.getresponse()
                payload = response.read()
                if response.status == 200 and b'"predictions"' in payload:
                    latencies.append(time.perf_counter() - started)
                    if response.getheader("X-Latency-Ms"):
                        server_ms.append(float(response.getheader("X-Latency-Ms")))
                else:
                    errors.append(f"HTTP {response.status}: {payload[:120]!r}")
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{type(error).__name__}: {error}")
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()
        return latencies, errors, server_ms

    cpu_started, started = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = [f.result() for f in [pool.submit(client) for _ in range(concurrency)]]
    wall = time.perf_counter() - started
    summary = summarize([x for o in outcomes for x in o[0]], [e for o in outcomes for e in o[1]], wall)
    summary["client_cpu_fraction"] = (time.process_time() - cpu_started) / wall
    summary["server_p50_ms"] = percentile([x for o in outcomes for x in o[2]], 50)  # X-Latency-Ms
    return summary


def demo_images(count: int, size: int) -> list[bytes]:
    """``count`` distinct demo JPEGs of ``size`` pixels, alternating real and AI-generated."""
    import numpy as np

    from aiclassify.data.demo import render

    return [render(i % 2, size, np.random.default_rng([7, i])) for i in range(count)]


def image_files(folder: Path, count: int) -> list[bytes]:
    """The first ``count`` images (JPEG, PNG, WebP, BMP) of ``folder`` and its subfolders, by path,
    repeated in turn when there are fewer."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise SystemExit(f"error: no images under {folder}")
    return [paths[i % len(paths)].read_bytes() for i in range(count)]


def measure_forward(
    predictor, images: list[bytes], repeats: int, batch_size: int = 32, budget_s: float = math.inf
) -> dict:
    """Bare forward timings of ``predictor``: single-image median and mean over ``repeats`` calls,
    batch-8 and batch-``batch_size`` images/s over ``repeats // 10`` calls; each loop stops early
    once it has run ``budget_s`` seconds (after at least 5 single calls, 3 batched ones)."""
    singles, started = [], time.perf_counter()
    for i in range(repeats):
        if i >= 5 and time.perf_counter() - started > budget_s:
            break
        begun = time.perf_counter()
        predictor.probabilities([images[i % len(images)]])
        singles.append(time.perf_counter() - begun)
    result = {
        "single_forward_ms": statistics.median(singles) * 1000,
        "single_forward_mean_ms": statistics.fmean(singles) * 1000,
        "single_calls": len(singles),
    }
    for size, key in ((8, "batch8_forward_ips"), (batch_size, "batched_forward_ips")):
        calls, started = 0, time.perf_counter()
        while calls < max(3, repeats // 10) and (calls < 3 or time.perf_counter() - started <= budget_s):
            predictor.probabilities([images[(calls * size + j) % len(images)] for j in range(size)])
            calls += 1
        result[key] = size * calls / (time.perf_counter() - started)
    return result


def serve_forward_measurements(args: argparse.Namespace) -> None:
    """Child-process loop: load the run's SavedModel, then print one :func:`measure_forward` JSON line
    per line read on stdin, until EOF."""
    from aiclassify.predict import Predictor

    predictor = Predictor(args.run)  # the same predictor class the API serves with
    images = upload_images(args, 32)  # the first 32 of the images the load sends
    for _ in range(2):
        for size in (1, 8, 32):
            predictor.probabilities(images[:size])
    print("ready", flush=True)
    for _ in sys.stdin:
        print(
            json.dumps(
                measure_forward(predictor, images, args.forward_repeats, budget_s=args.forward_seconds)
            ),
            flush=True,
        )


def upload_images(args: argparse.Namespace, count: int) -> list[bytes]:
    """The images sent: from ``--image-dir``, else demo JPEGs of ``--image-size`` pixels."""
    if args.image_dir:
        return image_files(args.image_dir, count)
    return demo_images(count, args.image_size)


class ForwardReference:
    """The in-process (no HTTP) reference figures, measured in a child process that loads the model
    once, so the load client never imports TensorFlow and each measurement takes a few seconds."""

    def __init__(self, args: argparse.Namespace):
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--forward-only",
            "--run",
            str(args.run),
            "--image-size",
            str(args.image_size),
            "--forward-repeats",
            str(args.forward_repeats),
            "--forward-seconds",
            str(args.forward_seconds),
        ]
        if args.image_dir:
            command += ["--image-dir", str(args.image_dir)]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def measure(self, when: str) -> dict:
        """One measurement, labelled ``when``."""
        self.process.stdin.write("measure\n")
        self.process.stdin.flush()
        while (line := self.process.stdout.readline()) == "ready\n":
            pass
        if not line:
            raise RuntimeError(f"the forward reference process exited with {self.process.wait()}")
        return {"when": when, **json.loads(line)}

    def close(self) -> None:
        """End the child process."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def reference_between(before: dict, after: dict) -> dict:
    """The mean of the reference measurements taken just before and just after a load."""
    keys = ("single_forward_ms", "single_forward_mean_ms", "batch8_forward_ips", "batched_forward_ips")
    return {key: (before[key] + after[key]) / 2 for key in keys}


# --- main -----------------------------------------------------------------------------------------


def git_commit() -> str:
    """``git rev-parse --short HEAD``, or ``unknown``."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="run directory (make demo)")
    parser.add_argument("--requests", type=int, default=2000, help="API requests per concurrency level")
    parser.add_argument(
        "--baseline-requests",
        type=int,
        help="baseline requests per level (default: --requests / 10, at least 50)",
    )
    parser.add_argument("--levels", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help="gunicorn --threads of both servers"
    )
    parser.add_argument("--workers", type=int, default=1, help="gunicorn --workers of both servers")
    parser.add_argument("--warmup", type=int, default=64, help="uncounted requests before each load")
    parser.add_argument("--images", type=int, default=64, help="distinct images sent in turn")
    parser.add_argument("--image-size", type=int, help="demo image side (default: the model's input)")
    parser.add_argument(
        "--image-dir", type=Path, help="send these images (e.g. real photos) instead of demo JPEGs"
    )
    parser.add_argument("--forward-repeats", type=int, default=200, help="single-image forward calls timed")
    parser.add_argument(
        "--forward-seconds",
        type=float,
        default=5.0,
        help="at most this long per forward measurement loop (slow models)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline app")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--forward-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.levels = [int(level) for level in args.levels.split(",") if level.strip()]
    args.baseline_requests = args.baseline_requests or max(50, args.requests // 10)
    return args


def print_report(results: dict) -> None:
    """The tables of ``results``."""
    settings = results["settings"]
    print(
        f"\n{results['date']}  {results['machine']['platform']}, {results['machine']['cpu_count']} CPUs, "
        f"commit {results['commit']}\n{settings['run']} ({settings['model_input']}x{settings['model_input']} "
        f"input), uploads: {settings['uploads']}, gunicorn {settings['gunicorn']}\n"
    )
    print(
        format_table(
            results["reference"],
            [
                "when",
                "single_forward_ms",
                "single_forward_mean_ms",
                "single_calls",
                "batch8_forward_ips",
                "batched_forward_ips",
            ],
        ),
        end="\n\n",
    )
    print(
        format_table(
            results["loads"],
            [
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
            ],
        ),
        end="\n\n",
    )
    if results["ratios"]:
        print(
            format_table(
                results["ratios"], ["concurrency", "throughput_api_over_baseline", "p50_baseline_over_api"]
            ),
            end="\n\n",
        )
    print(format_table(results["goals"], ["goal", "measured", "target", "unit", "met"]))


def run_levels(
    args: argparse.Namespace,
    servers: dict,
    forward: ForwardReference,
    images: list[bytes],
    references: list[dict],
    loads: list[dict],
) -> None:
    """Per concurrency level: a reference measurement, then the API's load, then the baseline's."""
    references.append(forward.measure(f"before c={args.levels[0]}"))
    for concurrency in args.levels:
        level = []
        for name, server in servers.items():
            total = args.requests if name == "api" else args.baseline_requests
            run_load(server.port, images, args.warmup, concurrency)
            cpu_before = server.cpu_seconds()
            load = run_load(server.port, images, total, concurrency)
            load["server_cpu_fraction"] = (server.cpu_seconds() - cpu_before) / load["wall_s"]
            load.update(server=name, concurrency=concurrency, loadavg_1m=os.getloadavg()[0])
            level.append(load)
            print(
                f"{name:<8} c={concurrency:<3} {load['requests']} requests, {load['errors']} errors, "
                f"p50 {load['p50_ms']:.1f} ms, {load['throughput_rps']:.1f} req/s",
                flush=True,
            )
        references.append(forward.measure(f"after c={concurrency}"))
        for load in level:
            load["reference"] = reference_between(references[-2], references[-1])
        loads += level


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write JSON with --out."""
    args = parse_args(argv)
    run = args.run = args.run.resolve()
    if args.forward_only:
        serve_forward_measurements(args)
        return 0
    missing = [p for p in ("metadata.json", "saved_model", "model.keras") if not (run / p).exists()]
    if missing:
        print(
            f"error: {args.run} has no {', '.join(missing)}: train it first with `make demo` "
            f"(or `python -m aiclassify train --config demo.yaml --workdir {args.run}`)",
            file=sys.stderr,
        )
        return 2
    image_size = int(json.loads((run / "metadata.json").read_text())["image_size"])
    args.image_size = args.image_size or image_size
    images = upload_images(args, args.images)
    servers = {
        "api": Server(
            "api",
            "aiclassify.serving.app:create_app()",
            {"AICLASSIFY_MODELS": f"bench={run}"},
            "/readyz",
            args.threads,
            workers=args.workers,
        )
    }
    if not args.no_baseline:
        servers["baseline"] = Server(
            "baseline",
            "baseline_app:create_app()",
            {"BASELINE_MODEL": str(run / "model.keras")},
            "/healthz",
            args.threads,
            ("--pythonpath", str(REPO / "scripts")),
            workers=args.workers,
        )
    settings = {
        "run": str(args.run),
        "model_input": image_size,
        "uploads": str(args.image_dir) if args.image_dir else f"demo JPEGs, {args.image_size} px",
        "upload_bytes_mean": statistics.fmean(len(image) for image in images),
        "levels": args.levels,
        "requests": args.requests,
        "baseline_requests": args.baseline_requests,
        "warmup": args.warmup,
        "gunicorn": f"--workers {args.workers} --threads {args.threads}",
        "max_batch_size": os.environ.get("AICLASSIFY_MAX_BATCH_SIZE", "32"),
        "max_batch_wait_ms": os.environ.get("AICLASSIFY_MAX_BATCH_WAIT_MS", "5"),
        "forward_repeats": args.forward_repeats,
        "forward_seconds": args.forward_seconds,
        "client": "Python threads, one keep-alive http.client connection each, "
        "a new multipart boundary per request",
    }
    references, loads, forward = [], [], None
    try:
        for server in servers.values():
            server.start()
        forward = ForwardReference(args)
        for server in servers.values():
            server.wait_ready()
        run_levels(args, servers, forward, images, references, loads)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if forward is not None:
            forward.close()
        for server in servers.values():
            server.stop()
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": git_commit(),
        "settings": settings,
        "reference": references,
        "loads": loads,
        "ratios": ratio_rows(loads),
        "goals": goal_rows(loads),
    }
    print_report(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
