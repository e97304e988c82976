"""Serving benchmark: the inference API under gunicorn against the seed-style baseline, side by side.

    python scripts/bench_serve.py --run runs/demo [--requests 2000] [--levels 1,8,32] [--out FILE.json]
    python scripts/bench_serve.py --run runs/bench-faces224 --requests 300 --baseline-requests 100 \
        --warmup 8 --image-dir DIR      # a slow, compute-bound model (cnn5 at 224x224): fewer requests
    python scripts/bench_serve.py --run runs/demo --fault-rate 0.1 --requests 10000 --levels 32
                                        # fault tolerance: 10% faulty requests, valid ones lost?
    python scripts/bench_serve.py --run runs/demo-general --faces runs/demo --requests 200 \
        --levels 1,32 --warmup 8        # the face path: model=auto against model=general

In one run, on 127.0.0.1 only: starts the API (``aiclassify.serving.app:create_app()``) and the
baseline (``aiclassify.benchmarks.baseline_app``: upload saved to disk, ``keras.utils.load_img``, one
``model.predict`` per request on ``model.keras``) under gunicorn with the same settings
(``--workers``, ``--threads``); measures the run's SavedModel in a separate process without HTTP
(bare single-image forward time; batched forward throughput; each loop for at most
``--forward-seconds``, so a slow model is measured the same way in bounded time) before and after
each concurrency level, and for each level sends ``--requests`` multipart ``POST /predict``
requests to the API and ``--baseline-requests`` (default a tenth: it is that much slower) to the
baseline, in a bounded loop over keep-alive ``http.client`` connections, one per client thread,
and reports p50/p95/p99 latency, throughput, errors, the CPU used by client and server, the
ratios, and whether the serving goals are met. Both servers are stopped at the end, also on
errors and Ctrl-C.

With ``--fault-rate R`` it measures fault tolerance instead, on the API alone: per level,
``--requests`` requests of which a share R (a draw seeded by ``--fault-seed``) are faulty (truncated
JPEGs, non-images, malformed JSON, bodies over ``AICLASSIFY_MAX_UPLOAD_MB``, unknown models, clients
that disconnect mid-upload; see ``aiclassify.benchmarks.faults``), and reports the valid requests
sent, answered 200 and lost, the answers to each fault, and the server errors (5xx seen by clients,
counted on ``/metrics``, and error lines in the server log).

With ``--faces FACE_RUN`` it measures the face path instead, on the API alone (no baseline, no
forward reference), serving ``FACE_RUN`` as model ``faces`` and ``--run`` as ``general``: first the
bare face detection latency at ``--detection-sizes`` (256, 1024 and 4000 px: the measurement of
``scripts/bench_faces.py``, in a child process, with the server's ``AICLASSIFY_*`` detector limits),
then per level ``--requests`` requests with ``model=general`` (the whole image, no face search) and
as many with ``model=auto`` (the whole image and every face found), and their ratios. It sends the
photos of the 140k faces sample (``--face-data``, default ../shared/data/faces.tar.gz extracted):
256 px one-face photos, every 8th upload a 1200x500 group photo of three of them; or the images of
``--image-dir``. Without face data it sends demo JPEGs and noise, in which no face is found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiclassify.benchmarks.report import (
    print_face_report,
    print_fault_report,
    print_report,
    write_results,
)
from aiclassify.benchmarks.runner import (
    DEFAULT_THREADS,
    BenchmarkOptions,
    missing_run_files,
    run_benchmark,
    run_face_benchmark,
    run_fault_benchmark,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO.parent / "shared" / "data" / "faces.tar.gz"


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
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of faulty requests (e.g. 0.1): run the fault-tolerance load on the API instead",
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of which requests are faulty")
    parser.add_argument(
        "--faces",
        type=Path,
        metavar="FACE_RUN",
        help="measure the face path instead: serve FACE_RUN as faces and --run as general",
    )
    parser.add_argument(
        "--face-data", type=Path, help="the 140k faces sample (default: ../shared/data/faces.tar.gz)"
    )
    parser.add_argument(
        "--detection-sizes", default="256,1024,4000", help="longer sides of the detection latency scenes"
    )
    parser.add_argument("--detection-repeats", type=int, default=5, help="timed calls per latency scene")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    args.levels = [int(level) for level in args.levels.split(",") if level.strip()]
    args.baseline_requests = args.baseline_requests or max(50, args.requests // 10)
    args.detection_sizes = [int(size) for size in args.detection_sizes.split(",") if size.strip()]
    if not 0.0 <= args.fault_rate <= 1.0:
        parser.error("--fault-rate must be between 0 and 1")
    if args.faces and args.fault_rate > 0:
        parser.error("--faces and --fault-rate are separate runs: give one of them")
    if args.detection_repeats < 1 or min(args.detection_sizes, default=0) < 16:
        parser.error("--detection-repeats must be >= 1 and --detection-sizes each >= 16")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write JSON with --out."""
    args = parse_args(argv)
    run = args.run.resolve()
    faces_run = args.faces.resolve() if args.faces else None
    for checked in (run, faces_run):
        missing = missing_run_files(checked) if checked else []
        if missing:
            print(
                f"error: {checked} has no {', '.join(missing)}: train it first with `make demo` "
                f"(or `python -m aiclassify train --config demo.yaml --workdir {checked}`)",
                file=sys.stderr,
            )
            return 2
    options = BenchmarkOptions(
        run=run,
        requests=args.requests,
        baseline_requests=args.baseline_requests,
        levels=args.levels,
        threads=args.threads,
        workers=args.workers,
        warmup=args.warmup,
        images=args.images,
        image_size=args.image_size,
        image_dir=args.image_dir,
        forward_repeats=args.forward_repeats,
        forward_seconds=args.forward_seconds,
        baseline=not args.no_baseline,
        workdir=REPO,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
        faces_run=faces_run,
        face_data=args.face_data,
        face_archive=SHARED_FACES,
        detection_sizes=args.detection_sizes,
        detection_repeats=args.detection_repeats,
    )
    if faces_run:
        benchmark, report = run_face_benchmark, print_face_report
    elif args.fault_rate > 0:
        benchmark, report = run_fault_benchmark, print_fault_report
    else:
        benchmark, report = run_benchmark, print_report
    try:
        results = benchmark(options)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    report(results)
    if args.out:
        write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
