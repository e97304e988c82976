"""The train command: ``python -m aiclassify.train --config faces.yaml [--set key=value ...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiclassify.config import load_config
from aiclassify.logs import setup_logging
from aiclassify.runs import RunDirectoryError
from aiclassify.train.trainer import train


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the train command."""
    parser = argparse.ArgumentParser(prog="aiclassify train", description=__doc__)
    parser.add_argument("--config", required=True, help="config file, or a bare name from configs/")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set train.epochs=3 (repeatable)",
    )
    parser.add_argument("--workdir", type=Path, help="run directory (default: runs/<config name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --workdir")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and start (or resume) the run."""
    args = parse_args(argv)
    setup_logging()
    try:
        config = load_config(args.config, args.overrides)
        train(config, args.workdir or Path("runs") / config.name, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, RunDirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
