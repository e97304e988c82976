"""Face detection benchmark: MTCNN's latency by image size, its detection rates, and the crops.

    python scripts/bench_faces.py [--data DIR] [--sizes 256,1024,4000] [--repeats 5] [--limit N]
                                  [--cifake DIR] [--box-scales 1.2,1.4,1.6] [--out FILE.json]

Data: ``--data`` (a folder holding the 140k layout, ``real``/``fake`` folders, with or without
split folders), else ../shared/data/faces.tar.gz extracted to a temporary folder, else none (then
only the latency is measured, on noise). In one process, with one
:class:`~aiclassify.faces.FaceDetector` at its default settings:

- **latency**: per longer side L of ``--sizes``, a L x 3L/4 scene of noise with one real face photo
  of the data pasted (its side 3L/4, at most 480 px: a face box of about 240 x 300 px); the first
  call apart, then the median and the worst of ``--repeats`` calls, and the faces found;
- **detection rates**: per class (real, fake) over all the data's images (``--limit`` per class),
  the share in which exactly one face is found, the histogram of face counts, the time;
- **crops**: on the images with one face found (real, then fake), each crop method's square
  against the image's own frame (:func:`aiclassify.faces.measure.crop_agreement`);
- with ``--cifake DIR`` (CIFAKE extracted, ``test/{REAL,FAKE}``), the share of its test images
  (``--limit`` per class) in which any face is found.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from aiclassify.benchmarks.detection import (  # noqa: E402
    LATENCY_COLUMNS,
    detection_latency,
    find_face_photos,
)
from aiclassify.benchmarks.report import format_table, git_commit, machine, write_results  # noqa: E402
from aiclassify.data.layouts import list_images  # noqa: E402
from aiclassify.faces import FaceDetector  # noqa: E402
from aiclassify.faces.measure import crop_agreement, detection_counts, load_rgb  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO.parent / "shared" / "data" / "faces.tar.gz"
RATE_COLUMNS = ["images", "class", "count", "exactly_one", "rate", "with_faces", "histogram", "ms_per_image"]
CROP_COLUMNS = ["images", "method", "count", "mean_iou", "min_iou", "mean_abs_diff"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="the 140k faces (default: ../shared/data/faces.tar.gz)")
    parser.add_argument("--sizes", default="256,1024,4000", help="longer sides of the latency scenes, px")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per latency scene")
    parser.add_argument("--limit", type=int, help="at most this many images per class (default: all)")
    parser.add_argument("--cifake", type=Path, help="CIFAKE extracted: also count faces in its test split")
    parser.add_argument("--box-scales", default="1.2,1.4,1.6", help="box-crop scales compared")
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    args.box_scales = [float(scale) for scale in args.box_scales.split(",")]
    if args.repeats < 1 or min(args.sizes) < 16:
        parser.error(f"--repeats must be >= 1 and --sizes >= 16. Received: {args.repeats}, {args.sizes}")
    return args


def rate_row(images: str, label: str, counts: dict) -> dict:
    """A detection-rate table row from :func:`~aiclassify.faces.measure.detection_counts`."""
    with_faces = counts["images"] - counts["histogram"].get(0, 0) - len(counts["failed"])
    return {
        "images": images,
        "class": label,
        "count": counts["images"],
        "exactly_one": counts["exactly_one"],
        "rate": counts["rate"],
        "with_faces": with_faces,
        "histogram": counts["histogram"],
        "ms_per_image": 1000 * counts["seconds"] / counts["images"] if counts["images"] else None,
        "failed": counts["failed"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    args = parse_args(argv)
    files, source = find_face_photos(args.data, SHARED_FACES)
    started = time.perf_counter()
    detector = FaceDetector()
    load_s = time.perf_counter() - started
    photo = load_rgb(files["real"][0]) if files.get("real") else None
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": git_commit(REPO),
        "machine": machine(),
        "settings": {"data": source, "limit": args.limit, "detector_load_s": load_s},
        "loadavg_1m": {"start": os.getloadavg()[0]},
        "latency": detection_latency(detector, args.sizes, args.repeats, photo),
        "rates": [],
        "crops": [],
    }
    for label, paths in files.items():
        paths = paths[: args.limit]
        counts = detection_counts(detector, paths)
        results["rates"].append(rate_row("140k faces", label, counts))
        for method, row in crop_agreement(counts["single"], args.box_scales).items():
            results["crops"].append(
                {"images": f"140k {label}", "method": method, "count": row.pop("images"), **row}
            )
    if args.cifake:
        for label in ("REAL", "FAKE"):
            paths = [Path(p) for p in list_images(args.cifake / "test" / label)][: args.limit]
            results["rates"].append(rate_row("CIFAKE test", label, detection_counts(detector, paths)))
    results["loadavg_1m"]["end"] = os.getloadavg()[0]
    results["wall_s"] = time.perf_counter() - started
    print(
        f"\n{results['date']}  {results['machine']['platform']}, {results['machine']['cpu_count']} CPUs, "
        f"commit {results['commit']}\ndata: {source}; detector loaded in {load_s:.1f} s; "
        f"{results['wall_s']:.0f} s in all; load average {results['loadavg_1m']['start']:.1f} at the start, "
        f"{results['loadavg_1m']['end']:.1f} at the end\n"
    )
    print(format_table(results["latency"], LATENCY_COLUMNS), end="\n\n")
    if results["rates"]:
        print(format_table(results["rates"], RATE_COLUMNS), end="\n\n")
        print(format_table(results["crops"], CROP_COLUMNS))
    for row in results["rates"]:
        for failure in row["failed"]:
            print(f"failed ({row['images']} {row['class']}): {failure}")
    if args.out:
        write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
