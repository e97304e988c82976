"""Write the embedded demo dataset, or fresh sample images: ``python -m aiclassify.data.demo_cli``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiclassify.data.demo import write_demo_dataset, write_samples


def main(argv: list[str] | None = None) -> int:
    """Write the dataset to --dest (default: the cache), or two samples to --samples DIR."""
    parser = argparse.ArgumentParser(prog="aiclassify demo-data", description=__doc__)
    parser.add_argument("--dest", type=Path, help="dataset folder (default: the user cache)")
    parser.add_argument("--samples", type=Path, help="write one real and one AI-generated sample here")
    parser.add_argument("--images-per-class", type=int, default=1200)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.samples:
        for path in write_samples(args.samples, args.image_size):
            print(path)
        return 0
    print(write_demo_dataset(args.dest, args.images_per_class, args.image_size, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
