"""Batch-scoring throughput: the score command's library against the bare batched forward pass.

    python scripts/bench_score.py --run models/general --images DIR [--count 2000] [--batch-size 64]
        [--rounds 2] [--out FILE.json]

Measures, side by side in one process, on the first ``--count`` image files under DIR (sorted, as
the score command lists them), with one loaded predictor:

- the batched forward: :meth:`Predictor.probabilities` on the images' bytes, read into memory
  beforehand, ``--batch-size`` at a time (decode and model: the ``batched_forward_ips`` of
  :mod:`aiclassify.benchmarks.forward`);
- the scorer: :func:`aiclassify.score.score_folder` into a fresh CSV file (reading and checking each
  file, warnings, metadata evidence, decode, model, verdicts, writing), timed from its first batch;
- the ratio of the two (goal >= 0.9); the rounds alternate them so drifting machine load hits both;
- the CPU time of each per image (this process, all threads): on a machine shared with other work,
  the scorer's loading threads also win it a larger share of the CPU, which the wall-clock ratio
  hides and the CPU times show;
- where the time goes: each stage alone, in milliseconds per image, on the first 256 images.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiclassify.benchmarks.report import print_values, write_results
from aiclassify.data.validate import image_problem
from aiclassify.predict import Predictor
from aiclassify.score import find_images, score_folder

STAGE_IMAGES = 256


def batched_forward(predictor: Predictor, images: list[bytes], batch_size: int) -> dict:
    """Images/s and CPU milliseconds per image of :meth:`Predictor.probabilities` over ``images``,
    ``batch_size`` at a time."""
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(images), batch_size):
        predictor.probabilities(images[start : start + batch_size])
    return {
        "images_per_second": len(images) / (time.perf_counter() - started),
        "cpu_ms_per_image": (time.process_time() - cpu) * 1000 / len(images),
    }


def scorer(predictor: Predictor, folder: Path, count: int, batch_size: int, workdir: Path) -> dict:
    """Images/s of :func:`score_folder` on the first ``count`` files, into a new CSV file, and the CPU
    milliseconds per image of the whole call."""
    out = Path(tempfile.mkdtemp(dir=workdir)) / "results.csv"
    cpu = time.process_time()
    summary = score_folder(folder, predictor, out, batch_size=batch_size, limit=count, progress=False)
    return {
        "images_per_second": summary.images_per_second,
        "cpu_ms_per_image": (time.process_time() - cpu) * 1000 / count,
        "scored": summary.scored,
        "errors": summary.errors,
    }


def stage_costs(predictor: Predictor, paths: list[Path], batch_size: int) -> dict[str, float]:
    """Milliseconds per image of each stage alone, run one after the other in this thread."""
    images = [path.read_bytes() for path in paths]
    batches = [images[start : start + batch_size] for start in range(0, len(images), batch_size)]
    prepared: list = []
    stages = {
        "read_file": lambda: [path.read_bytes() for path in paths],
        "image_problem": lambda: [image_problem(str(path)) for path in paths],
        "warnings": lambda: [predictor.image_warnings(image) for image in images],
        "evidence": lambda: [predictor.evidence(image) for image in images],
        "prepare": lambda: [prepared.append(predictor.prepare(batch)) for batch in batches],
        "model": lambda: [predictor.score_prepared(batch) for batch in prepared],
    }
    costs = {}
    for name, run in stages.items():
        started = time.perf_counter()
        run()
        costs[f"{name}_ms_per_image"] = (time.perf_counter() - started) * 1000 / len(paths)
    return costs


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table; write JSON with --out."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="run directory or model folder")
    parser.add_argument("--images", type=Path, required=True, help="folder of images (e.g. CIFAKE's test)")
    parser.add_argument("--count", type=int, default=2000, help="images scored per measurement")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two measurements")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    paths = find_images(args.images)[0][: args.count]
    if not paths:
        raise SystemExit(f"no image files under {args.images}")
    predictor = Predictor.load(args.run, batch_size=args.batch_size)
    images = [path.read_bytes() for path in paths]
    predictor.probabilities(images[: args.batch_size])  # warm-up: tracing, first calls
    forward, scored = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.rounds):
            forward.append(batched_forward(predictor, images, args.batch_size))
            scored.append(scorer(predictor, args.images, len(paths), args.batch_size, Path(workdir)))
    scorer_ips = statistics.fmean(item["images_per_second"] for item in scored)
    forward_ips = statistics.fmean(item["images_per_second"] for item in forward)
    import tensorflow as tf

    results = {
        "run": str(args.run),
        "images": f"{args.images} (first {len(paths)} image files)",
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, TensorFlow {tf.__version__}",
        "batched_forward_images_per_second": forward_ips,
        "scorer_images_per_second": scorer_ips,
        "ratio_scorer_to_forward": scorer_ips / forward_ips,
        "per_round_forward": [item["images_per_second"] for item in forward],
        "per_round_scorer": [item["images_per_second"] for item in scored],
        "forward_cpu_ms_per_image": statistics.fmean(item["cpu_ms_per_image"] for item in forward),
        "scorer_cpu_ms_per_image": statistics.fmean(item["cpu_ms_per_image"] for item in scored),
        "load_average_1m": os.getloadavg()[0],
        "scorer_errors": scored[-1]["errors"],
        **stage_costs(predictor, paths[:STAGE_IMAGES], args.batch_size),
    }
    print_values(results)
    if args.out:
        write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
