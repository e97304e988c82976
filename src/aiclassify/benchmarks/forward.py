"""The forward-pass reference: the run's SavedModel timed without HTTP, in a child process.

:class:`ForwardReference` starts ``python -m aiclassify.benchmarks.forward`` once; the child loads
the model (so the load client never imports TensorFlow) and prints one :func:`measure_forward`
JSON line per line it reads on stdin, so each measurement takes a few seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from aiclassify.benchmarks.load import upload_images

REFERENCE_KEYS = ("single_forward_ms", "single_forward_mean_ms", "batch8_forward_ips", "batched_forward_ips")


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


def serve_forward_measurements(
    run: Path, image_dir: Path | None, image_size: int, repeats: int, budget_s: float
) -> None:
    """Child-process loop: load the run's SavedModel, then print one :func:`measure_forward` JSON line
    per line read on stdin, until EOF."""
    from aiclassify.predict import Predictor

    predictor = Predictor.load(run)  # the inference path the API serves with
    images = upload_images(image_dir, image_size, 32)  # the first 32 of the images the load sends
    for _ in range(2):
        for size in (1, 8, 32):
            predictor.probabilities(images[:size])
    print("ready", flush=True)
    for _ in sys.stdin:
        print(json.dumps(measure_forward(predictor, images, repeats, budget_s=budget_s)), flush=True)


class ForwardReference:
    """The in-process (no HTTP) reference figures, measured in a child process that loads the model
    once, so the load client never imports TensorFlow and each measurement takes a few seconds."""

    def __init__(
        self,
        run: Path,
        image_size: int,
        repeats: int,
        budget_s: float,
        image_dir: Path | None = None,
        workdir: Path | None = None,
    ):
        command = [
            sys.executable,
            "-m",
            "aiclassify.benchmarks.forward",
            "--run",
            str(run),
            "--image-size",
            str(image_size),
            "--forward-repeats",
            str(repeats),
            "--forward-seconds",
            str(budget_s),
        ]
        if image_dir:
            command += ["--image-dir", str(image_dir)]
        self.process = subprocess.Popen(
            command,
            cwd=workdir,
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
    return {key: (before[key] + after[key]) / 2 for key in REFERENCE_KEYS}


def main(argv: list[str] | None = None) -> int:
    """The child process of :class:`ForwardReference` (not meant to be run by hand)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--image-dir", type=Path)
    parser.add_argument("--forward-repeats", type=int, default=200)
    parser.add_argument("--forward-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    serve_forward_measurements(
        args.run, args.image_dir, args.image_size, args.forward_repeats, args.forward_seconds
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
