"""``aiclassify data``: download the Kaggle datasets, inspect a dataset, write a cleaned copy."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from aiclassify.data.sources import KAGGLE_DATASETS

CORNERS = ("br", "bl", "tr", "tl")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``aiclassify data`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="aiclassify data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{download,inspect,clean}")

    download = commands.add_parser("download", help="download a Kaggle dataset (once)")
    download.add_argument("key", choices=sorted(KAGGLE_DATASETS), help="which dataset")
    download.add_argument("--dest", type=Path, help="dataset folder to create (default: data/KEY)")
    download.add_argument("--force", action="store_true", help="fetch again even when already complete")
    download.add_argument("--quiet", action="store_true", help="no progress bars")

    inspect = commands.add_parser("inspect", help="counts, sizes, formats, unreadable files, duplicates")
    inspect.add_argument("dir", type=Path, help="dataset folder")
    inspect.add_argument("--out", type=Path, help="write report.json and PNG figures here")
    inspect.add_argument("--samples-per-class", type=int, default=8, help="images per class in samples.png")
    _add_scan_options(inspect)

    clean = commands.add_parser("clean", help="copy a dataset without unreadable files and duplicates")
    clean.add_argument("dir", type=Path, help="dataset folder (never modified)")
    clean.add_argument("--out", type=Path, required=True, help="new folder for the cleaned copy")
    clean.add_argument(
        "--crop-watermark",
        type=int,
        default=0,
        metavar="PIXELS",
        help="cut a band of PIXELS rows off every image (bottom for br/bl, top for tr/tl)",
    )
    clean.add_argument("--corner", choices=CORNERS, default="br", help="where the watermark is (default br)")
    clean.add_argument("--split-grid", action="store_true", help="cut every image into its 2x2 tiles")
    clean.add_argument(
        "--grid-min-size",
        type=int,
        default=0,
        metavar="PIXELS",
        help="with --split-grid, only cut images at least this wide and high",
    )
    _add_scan_options(clean)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``aiclassify data`` subcommand; user errors print ``error: ...`` and return 2."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # validate.py imports TensorFlow
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as error:  # LayoutError, CleanError, KaggleError among them
        print(f"error: {error}", file=sys.stderr)
        return 2


def _download(args: argparse.Namespace) -> int:
    from aiclassify.data.kaggle import download_dataset

    dest = args.dest or Path("data") / args.key
    result = download_dataset(args.key, dest, force=args.force, quiet=args.quiet)
    print(result.path)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from aiclassify.data.inspection import format_summary, scan_dataset, summarize, write_inspection

    scan = scan_dataset(args.dir, workers=args.workers, verify=not args.no_verify, progress=not args.quiet)
    report = summarize(scan)
    print(format_summary(report))
    if args.out:
        for path in write_inspection(scan, report, args.out, args.samples_per_class):
            print(f"wrote {path}")
    return 0


def _clean(args: argparse.Namespace) -> int:
    from aiclassify.data.clean import clean_dataset, format_clean_summary

    report = clean_dataset(
        args.dir,
        args.out,
        crop_watermark=args.crop_watermark,
        corner=args.corner,
        split_grid=args.split_grid,
        grid_min_size=args.grid_min_size,
        workers=args.workers,
        progress=not args.quiet,
        verify=not args.no_verify,
    )
    print(format_clean_summary(report))
    return 0


def _add_scan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="reader threads (default: 2 per CPU, at most 8)")
    parser.add_argument("--no-verify", action="store_true", help="read headers only, do not decode-check")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


COMMANDS = {"download": _download, "inspect": _inspect, "clean": _clean}


if __name__ == "__main__":
    sys.exit(main())
