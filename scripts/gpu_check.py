"""Mixed precision against float32 under a 4 GB memory cap (the GTX 1650 the configs are tuned for).

    python scripts/gpu_check.py [--model cnn5] [--image-size 224] [--batch-size 32] [--steps 20]
                                [--memory-cap-gb 4] [--out FILE.json]

Trains the model on synthetic images once per precision, each in a child process, on the Keras
backend ``KERAS_BACKEND`` names (TensorFlow, JAX or PyTorch), and prints images/s, peak memory, the
mixed_float16 speed-up and whether the batch fits under the cap (:mod:`aiclassify.benchmarks.precision`).
Without a GPU it runs on the CPU and says so: a check of the script, not of the goal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aiclassify.benchmarks.precision import CheckOptions, format_report, run_check


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the check, print the table and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = CheckOptions()
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--memory-cap-gb", type=float, default=defaults.memory_cap_gb)
    parser.add_argument("--out", type=Path, help="also write the report as JSON")
    args = parser.parse_args(argv)
    options = CheckOptions(args.model, args.image_size, args.batch_size, args.steps, args.memory_cap_gb)
    report = run_check(options)
    print(format_report(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
