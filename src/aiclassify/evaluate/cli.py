"""The evaluate command: ``python -m aiclassify.evaluate --run runs/demo [--data DIR] [--ood NAME=DIR ...]``.

``--cross-filters none,gray_world,srm`` (or ``all``) also scores the test set with the model's input
filter replaced by each of these filters.

``--band-fpr 0.03`` (the default) sets the rate both ends of the inconclusive band are chosen for, and
``--band-confidence 0.95`` (the default) the confidence with which validation must show each end within
it (0: the rate seen on validation is enough).

``--faces NAME=DIR`` (repeatable) scores a labelled folder of whole photos through the face path: each
face MTCNN finds is cropped and scored by the run's (face) model; the report gains per-face metrics.

Writes ``report.json``, ``report.md``, ``figures/`` and ``calibration.json`` (temperature, operating
points and inconclusive band, which the predictor and the API use) into the run; training's files are
never rewritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiclassify.logs import setup_logging


def parse_ood(values: list[str], option: str = "--ood") -> dict[str, Path]:
    """``NAME=DIR`` options (of ``option``) as a mapping (names must be unique)."""
    sets: dict[str, Path] = {}
    for value in values:
        name, sep, directory = value.partition("=")
        if not sep or not name or not directory:
            raise argparse.ArgumentTypeError(f"{option} must look like NAME=DIR. Received: {value!r}")
        if name in sets:
            raise argparse.ArgumentTypeError(f"{option} name {name!r} given twice")
        sets[name] = Path(directory)
    return sets


def fraction(value: str) -> float:
    """A number strictly between 0 and 1."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {value!r}") from None
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return number


def confidence_level(value: str) -> float:
    """A number in [0, 1)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {value!r}") from None
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, not {value}")
    return number


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the evaluate command."""
    from aiclassify.evaluate.operating_points import BAND_CONFIDENCE, BAND_FPR
    from aiclassify.evaluate.robustness import TIERS

    parser = argparse.ArgumentParser(prog="aiclassify evaluate", description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="finished run directory")
    parser.add_argument("--data", type=Path, help="another copy of the dataset (default: the run's own)")
    parser.add_argument(
        "--ood", action="append", default=[], metavar="NAME=DIR", help="extra set scored whole (repeatable)"
    )
    parser.add_argument(
        "--faces",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a labelled folder of whole photos scored through the face path: each face found is "
        "scored by this (face) model, with per-face metrics (repeatable)",
    )
    parser.add_argument(
        "--tiers",
        help=f"comma-separated robustness tiers (default: all of {','.join(TIERS)}; 'none' for clean only)",
    )
    parser.add_argument(
        "--cross-filters",
        metavar="F,G,...",
        help="also score the test set with the model's input filter replaced by each of these "
        "(comma-separated filter names, or 'all')",
    )
    parser.add_argument(
        "--band-fpr",
        type=fraction,
        default=BAND_FPR,
        help="the inconclusive band: at most this share of real validation images is called "
        f"ai-generated, and at most this share of AI-generated ones real (default {BAND_FPR})",
    )
    parser.add_argument(
        "--band-confidence",
        type=confidence_level,
        default=BAND_CONFIDENCE,
        help="the confidence with which validation must keep each end of the band within --band-fpr "
        f"(one-sided Clopper-Pearson upper bound of the rate; 0: the rate itself; default {BAND_CONFIDENCE})",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per scoring batch")
    parser.add_argument("--grid-images", type=int, default=24, help="test images in the grid figure")
    parser.add_argument("--no-figures", action="store_true", help="skip figures/ (faster)")
    parser.add_argument(
        "--no-calibration-file",
        "--no-metadata",
        dest="no_calibration_file",
        action="store_true",
        help="do not write calibration.json (the thresholds the predictor serves stay as they are)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, evaluate the run and print where the report is."""
    args = parse_args(argv)
    setup_logging()
    from aiclassify.evaluate.cross_filter import parse_filters
    from aiclassify.evaluate.report import evaluate_run
    from aiclassify.runs import REPORT_MD, RunDirectoryError

    tiers = None if args.tiers is None else [t for t in args.tiers.split(",") if t and t != "none"]
    try:
        cross_filters = parse_filters(args.cross_filters) if args.cross_filters else None
        report = evaluate_run(
            args.run,
            data_dir=args.data,
            ood=parse_ood(args.ood),
            tiers=tiers,
            batch_size=args.batch_size,
            grid_images=args.grid_images,
            write_calibration=not args.no_calibration_file,
            draw_figures=not args.no_figures,
            cross_filters=cross_filters,
            band_fpr=args.band_fpr,
            band_confidence=args.band_confidence,
            faces=parse_ood(args.faces, "--faces"),
        )
    except (argparse.ArgumentTypeError, RunDirectoryError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    test = report["test"]
    auc = test["roc_auc"] if test["roc_auc"] is not None else float("nan")
    print(
        f"{report['run']}: test accuracy {test['accuracy']:.4f}, ROC-AUC {auc:.4f}, "
        f"temperature {report['calibration']['temperature']:.3f}. Report: {args.run / REPORT_MD}"
    )
    band, band_test = report["band"], report["band"]["test"]
    print(
        f"inconclusive band {band['lower']:.4f}-{band['upper']:.4f}"
        + (" (empty)" if band["empty"] else "")
        + f": test coverage {_percent(band_test['coverage'])}, accuracy of confident verdicts "
        f"{_percent(band_test['confident_accuracy'])}, FPR {_percent(band_test['fpr'])}"
    )
    for name, section in report.get("faces", {}).items():
        scored = section["faces"] or {}
        print(
            f"face path {name}: {scored.get('examples', 0)} faces in {section['photos']} photos, "
            f"per-face accuracy {_percent(scored.get('accuracy'))}"
        )
    if "cross_filter" in report:
        cells = [
            f"{row['filter']} {'n/a' if row['accuracy'] is None else format(row['accuracy'], '.4f')}"
            for row in report["cross_filter"]["rows"]
        ]
        print(
            f"cross-filter accuracy (trained with {report['cross_filter']['trained_filter']}): "
            + ", ".join(cells)
        )
    return 0


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"
