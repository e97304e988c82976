"""Copy a dataset without its unreadable files and exact duplicates, optionally fixing its images.

The source is never modified. Files go to a staging folder beside the output, which is renamed to
the output only when everything was written, with ``clean-report.json`` listing each file dropped or
changed and why. Duplicates: an image found in several splits is kept in the split that is used
last (test, then validation) and dropped from the others, so training never sees a test image;
within a split one copy is kept (the shortest name), unless the copies carry both labels, when all
are dropped.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image, JpegImagePlugin

from aiclassify.data.inspection import (
    LABEL_NAMES,
    ImageRecord,
    Scan,
    find_duplicates,
    progress_bar,
    scan_dataset,
)

CORNERS = ("br", "bl", "tr", "tl")
REPORT_NAME = "clean-report.json"
KEEP_ORDER = ("test", "validation", "train", "all")  # an image in several splits stays in the first


class CleanError(ValueError):
    """The cleaning cannot be done as asked; the message says why."""


def plan_drops(scan: Scan) -> dict[str, tuple[str, str]]:
    """Map the relative path of every file to drop to (kind, reason), from the scan of the dataset.

    Kinds: ``unreadable``, ``leak`` (also in a later split), ``duplicate`` (another copy in the same
    split is kept) and ``label-conflict`` (copies in one split labelled both real and ai-generated).
    """
    drops = {r.relpath: ("unreadable", str(r.problem)) for r in scan.records if r.problem is not None}
    within, across = find_duplicates(scan.records)
    for group in across:
        keep_split = min(group["paths"], key=lambda s: KEEP_ORDER.index(s) if s in KEEP_ORDER else 99)
        keeper = group["paths"][keep_split][0]
        for split, paths in group["paths"].items():
            if split != keep_split:
                drops.update({p: ("leak", f"identical to {keeper} in {keep_split}") for p in paths})
    for group in within:
        paths = [p for p in group["paths"] if p not in drops]
        if len(group["labels"]) > 1:
            reason = "identical copies labelled real and ai-generated"
            drops.update({p: ("label-conflict", reason) for p in paths})
        elif len(paths) > 1:
            keeper = min(paths, key=lambda p: (len(p), p))  # "x.jpg" rather than "x (1).jpg"
            reason = f"identical to {keeper}, which is kept"
            drops.update({p: ("duplicate", reason) for p in paths if p != keeper})
    return drops


def clean_dataset(
    source: Path,
    out: Path,
    crop_watermark: int = 0,
    corner: str = "br",
    split_grid: bool = False,
    grid_min_size: int = 0,
    workers: int | None = None,
    progress: bool = True,
    verify: bool = True,
) -> dict[str, Any]:
    """Write a cleaned copy of the dataset under ``source`` to ``out`` and return the report.

    ``crop_watermark`` pixels are cut off as a full-width band at the bottom (``corner`` ``br``/``bl``)
    or top (``tr``/``tl``) of every image, where a generator stamps its watermark; ``split_grid``
    then cuts every image whose sides are both at least ``grid_min_size`` into its four 2x2 tiles.
    Changed images are re-encoded in their own format (JPEG with its own quantisation tables).
    """
    if crop_watermark < 0 or grid_min_size < 0:
        raise CleanError("--crop-watermark and --grid-min-size must be 0 or more pixels.")
    if corner not in CORNERS:
        raise CleanError(f"--corner must be one of {CORNERS}. Received: {corner!r}")
    source, out = Path(source).resolve(), Path(out).resolve()
    if out == source or out.is_relative_to(source) or source.is_relative_to(out):
        raise CleanError(f"The output {out} must be outside the source {source} (never changed).")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CleanError(f"The output folder {out} already exists and is not empty; choose a new one.")
    scan = scan_dataset(source, workers=workers, verify=verify, progress=progress)
    drops = plan_drops(scan)
    prefix = scan.root.name if scan.layout == "realifake" else ""  # keep Realifake/{REAL,FAKE}
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    options = {"crop": crop_watermark, "corner": corner, "grid": split_grid, "grid_min": grid_min_size}
    kept = [r for r in scan.records if r.relpath not in drops]
    for folder in {Path(prefix, r.relpath).parent for r in scan.records}:  # even when emptied
        (staging / folder).mkdir(parents=True, exist_ok=True)

    def write_one(record: ImageRecord) -> tuple[ImageRecord, list[str], str | None, tuple[str, str] | None]:
        return (record, *_write(scan.path(record), staging, Path(prefix, record.relpath), options))

    results = []
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool, progress_bar(len(kept), "Writing", progress) as bar:
        for result in pool.map(write_one, kept, chunksize=64):
            results.append(result)
            bar.update(1)
    changed = []
    for record, outputs, change, problem in results:
        if problem:
            drops[record.relpath] = problem
        elif change:
            changed.append({"path": record.relpath, "outputs": outputs, "change": change})
    staging.mkdir(parents=True, exist_ok=True)
    report = _report(scan, out, drops, changed, results, options)
    (staging / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        out.rmdir()  # empty, checked above
    staging.rename(out)
    return report


def format_clean_summary(report: dict[str, Any]) -> str:
    """A human-readable summary of a cleaning report."""
    summary = report["summary"]
    lines = [f"Cleaned {report['source']} -> {report['output']} (layout: {report['layout']})"]
    for split, after in report["after"].items():
        before = report["before"].get(split, {})
        lines.append(
            f"  {split:<11} real {before.get('real', 0)} -> {after['real']}, "
            f"ai-generated {before.get('ai-generated', 0)} -> {after['ai-generated']}"
        )
    kinds = ", ".join(f"{kind} {count}" for kind, count in summary["dropped"].items()) or "nothing"
    lines.append(f"Dropped {summary['dropped_total']} files: {kinds}")
    lines.append(f"Changed: {summary['changed']} images; files written: {summary['written']}")
    lines.append(f"Report: {Path(report['output']) / REPORT_NAME}")
    return "\n".join(lines)


def _write(
    path: Path, staging: Path, relpath: Path, options: dict[str, Any]
) -> tuple[list[str], str | None, tuple[str, str] | None]:
    """Copy or transform one file; return (output paths, change description, reason it was dropped)."""
    target = staging / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    if not options["crop"] and not options["grid"]:
        shutil.copyfile(path, target)
        return [str(relpath)], None, None
    try:
        with Image.open(path) as image:
            save_args = _save_args(image)
            image.load()
            tiles, changes = [image], []
            if options["crop"]:
                if image.height <= options["crop"]:
                    return [], None, ("too-small", f"{image.width}x{image.height} is too small to crop")
                top = options["corner"].startswith("t")
                box = (
                    (0, options["crop"], image.width, image.height)
                    if top
                    else (0, 0, image.width, image.height - options["crop"])
                )
                tiles = [image.crop(box)]
                changes.append(f"cropped a {options['crop']} px band at the {'top' if top else 'bottom'}")
            if options["grid"] and min(tiles[0].size) >= max(options["grid_min"], 2):
                tiles = _grid_tiles(tiles[0])
                changes.append("split into 2x2 tiles")
            if not changes:
                shutil.copyfile(path, target)
                return [str(relpath)], None, None
            outputs = []
            for index, tile in enumerate(tiles):
                suffix = f"_{index // 2}{index % 2}" if len(tiles) > 1 else ""
                name = target.with_stem(target.stem + suffix)
                tile.save(name, **save_args)
                outputs.append(str(name.relative_to(staging)))
            return outputs, "; ".join(changes), None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return [], None, ("transform-failed", str(error))


def _save_args(image: Image.Image) -> dict[str, Any]:
    args: dict[str, Any] = {"format": image.format}
    if image.format == "JPEG":
        args["qtables"] = image.quantization
        sampling = JpegImagePlugin.get_sampling(image)
        if sampling != -1:
            args["subsampling"] = sampling
    if image.info.get("icc_profile"):
        args["icc_profile"] = image.info["icc_profile"]
    return args


def _grid_tiles(image: Image.Image) -> list[Image.Image]:
    half_w, half_h = image.width // 2, image.height // 2
    return [
        image.crop((col * half_w, row * half_h, (col + 1) * half_w, (row + 1) * half_h))
        for row in (0, 1)
        for col in (0, 1)
    ]


def _report(
    scan: Scan,
    out: Path,
    drops: dict[str, tuple[str, str]],
    changed: list[dict[str, Any]],
    results: list[tuple[ImageRecord, list[str], str | None, tuple[str, str] | None]],
    options: dict[str, Any],
) -> dict[str, Any]:
    by_path = {r.relpath: r for r in scan.records}
    before: dict[str, dict[str, int]] = {}
    after: dict[str, dict[str, int]] = {}
    for record in scan.records:
        before.setdefault(record.split, {"real": 0, "ai-generated": 0})[LABEL_NAMES[record.label]] += 1
        after.setdefault(record.split, {"real": 0, "ai-generated": 0})
    for record, outputs, _, problem in results:
        if not problem:
            after[record.split][LABEL_NAMES[record.label]] += len(outputs)
    kinds = dict(Counter(kind for kind, _ in drops.values()).most_common())
    return {
        "source": str(scan.root),
        "output": str(out),
        "layout": scan.layout,
        "options": {
            "crop_watermark": options["crop"],
            "corner": options["corner"],
            "split_grid": options["grid"],
            "grid_min_size": options["grid_min"],
        },
        "before": before,
        "after": after,
        "summary": {
            "dropped": kinds,
            "dropped_total": len(drops),
            "changed": len(changed),
            "written": sum(len(outputs) for _, outputs, _, problem in results if not problem),
        },
        "dropped": [
            {
                "path": path,
                "split": by_path[path].split,
                "label": LABEL_NAMES[by_path[path].label],
                "kind": kind,
                "reason": reason,
            }
            for path, (kind, reason) in sorted(drops.items())
        ],
        "changed": changed,
    }
