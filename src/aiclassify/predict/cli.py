"""The predict command: ``python -m aiclassify.predict --run runs/demo a.jpg [b.png ...] [--json]``.

Scores files through :class:`aiclassify.predict.Predictor`, the same inference path as the API.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from aiclassify.logs import setup_logging


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the predict command."""
    parser = argparse.ArgumentParser(prog="aiclassify predict", description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="run directory (or a SavedModel folder)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    parser.add_argument(
        "--operating-point", help="a stored operating point (e.g. fpr_1pct) instead of the default threshold"
    )
    parser.add_argument("images", nargs="+", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print one line per image: label and probability (or JSON with --json); 1 when a file failed."""
    args = parse_args(argv)
    setup_logging()
    from aiclassify.predict import Predictor
    from aiclassify.runs import RunDirectoryError

    try:
        predictor = Predictor.load(args.run)
        results = predictor.predict_files(args.images, operating_point=args.operating_point)
    except (RunDirectoryError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for result in results:
        if args.json:
            print(json.dumps(asdict(result)))
        elif result.error:
            print(f"{result.path}: error: {result.error}")
        else:
            print(f"{result.path}: {result.label} (P(AI-generated) = {result.probability_ai:.4f})")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
