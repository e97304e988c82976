"""The score command: ``aiclassify score DIR --run R --out results.csv`` (or ``results.jsonl``).

Scores every image file under DIR (subfolders included unless --no-recursive; sorted) with the run,
through the same inference path as the predict command and the API, and appends one row per file to
--out as it goes: ``.csv`` flattened, ``.jsonl`` nested as the API's image result. Run it again with
the same --out to resume after an interruption: files already in it are not scored again. A file
that cannot be scored gets a row with its ``error``. Exit status: 0 when every file was scored, 1
when the output lists files that could not be, 2 on a usage error (bad --out suffix, unknown
operating point, an --out written for another run or threshold...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiclassify.logs import setup_logging


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the score command."""
    parser = argparse.ArgumentParser(prog="aiclassify score", description=__doc__)
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder of images to score")
    parser.add_argument("--run", required=True, type=Path, help="run directory or model folder")
    parser.add_argument("--out", required=True, type=Path, help="results file: .csv or .jsonl")
    parser.add_argument("--batch-size", type=int, default=64, help="images per model call (default 64)")
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument(
        "--operating-point", help="a stored operating point (e.g. fpr_1pct) instead of the default threshold"
    )
    threshold.add_argument("--target-fpr", type=float, help="the stored operating point of this target FPR")
    parser.add_argument(
        "--recursive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score the subfolders too (default: yes)",
    )
    parser.add_argument("--limit", type=int, help="only the first N image files, in sorted order")
    parser.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="local (default) or ray (the ray extra)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Ray actors, one model each (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Score the folder and print a summary line; see the module docstring for the exit status."""
    args = parse_args(argv)
    setup_logging()
    from aiclassify.runs import RunDirectoryError
    from aiclassify.score import score_folder

    try:
        summary = score_folder(
            args.folder,
            args.run,
            args.out,
            batch_size=args.batch_size,
            operating_point=args.operating_point,
            target_fpr=args.target_fpr,
            recursive=args.recursive,
            limit=args.limit,
            engine=args.engine,
            workers=args.workers,
            progress=not args.no_progress,
        )
    except (RunDirectoryError, FileNotFoundError, ImportError, ValueError, ConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 1 if summary.errors or summary.earlier_errors else 0


if __name__ == "__main__":
    sys.exit(main())
