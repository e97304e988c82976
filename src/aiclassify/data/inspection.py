"""Inspect a dataset on disk: counts, balance, sizes, formats, unreadable files and exact duplicates.

Every file is read once and hashed (sha256), its header is read with Pillow without decoding the
pixels, and :func:`aiclassify.data.validate.image_problem` checks that it decodes. The work runs in a
thread pool. Splits are the split folders on disk (``all`` when the dataset has none); an image
found in two splits is a leak (the model is tested on an image it trained on).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from aiclassify.data.layouts import (
    SPLITS,
    class_dirs,
    detect_layout,
    find_dataset_root,
    list_images,
    split_dirs,
)

LABEL_NAMES = ("real", "ai-generated")
UNSPLIT = "all"
CHUNK = 256


@dataclass(frozen=True)
class ImageRecord:
    """What the scan learnt about one file (``relpath`` is relative to the dataset root)."""

    relpath: str
    split: str
    label: int
    sha256: str
    nbytes: int
    width: int | None
    height: int | None
    format: str | None
    mode: str | None
    problem: str | None


@dataclass(frozen=True)
class Scan:
    """All files of a dataset, scanned."""

    root: Path
    layout: str
    records: list[ImageRecord]
    seconds: float

    def path(self, record: ImageRecord) -> Path:
        """The absolute path of ``record``."""
        return self.root / record.relpath


def dataset_files(root: Path) -> tuple[str, Path, list[tuple[str, int, str]]]:
    """The layout name, dataset root and ``(split, label, path)`` of every file, split folders as on disk."""
    layout = detect_layout(root)
    dataset_root = find_dataset_root(root)
    folders = split_dirs(dataset_root) or {UNSPLIT: dataset_root}
    files = []
    for split in sorted(folders, key=_split_order):
        classes = class_dirs(folders[split])
        for label, key in enumerate(("real", "fake")):
            files.extend((split, label, path) for path in list_images(classes[key]))
    return layout, dataset_root, files


def scan_dataset(root: Path, workers: int | None = None, verify: bool = True, progress: bool = True) -> Scan:
    """Hash and read the header of every file under ``root`` (with ``verify``, also decode-check it)."""
    from aiclassify.data.validate import image_problem  # imports TensorFlow: only when scanning

    check = image_problem if verify else None
    started = time.monotonic()
    layout, dataset_root, files = dataset_files(root)
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    chunks = [files[i : i + CHUNK] for i in range(0, len(files), CHUNK)]
    records: list[ImageRecord] = []

    def scan_chunk(chunk: list[tuple[str, int, str]]) -> list[ImageRecord]:
        return [_scan_file(dataset_root, item, check) for item in chunk]

    bar = progress_bar(len(files), "Scanning", progress)
    with ThreadPoolExecutor(max_workers=workers) as pool, bar:
        for chunk_records in pool.map(scan_chunk, chunks):
            records.extend(chunk_records)
            bar.update(len(chunk_records))
    return Scan(dataset_root, layout, records, time.monotonic() - started)


def find_duplicates(records: Iterable[ImageRecord]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Groups of byte-identical readable files: within one split, and across splits (leaks)."""
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        if record.problem is None:
            by_hash[record.sha256].append(record)
    within, across = [], []
    for digest, group in sorted(by_hash.items()):
        if len(group) < 2:
            continue
        splits = sorted({r.split for r in group}, key=_split_order)
        for split in splits:
            members = sorted(r.relpath for r in group if r.split == split)
            if len(members) > 1:
                labels = sorted({LABEL_NAMES[r.label] for r in group if r.split == split})
                within.append({"split": split, "sha256": digest, "paths": members, "labels": labels})
        if len(splits) > 1:
            by_split = {s: sorted(r.relpath for r in group if r.split == s) for s in splits}
            labels = sorted({LABEL_NAMES[r.label] for r in group})
            across.append({"sha256": digest, "paths": by_split, "labels": labels})
    return within, across


def summarize(scan: Scan) -> dict[str, Any]:
    """The JSON-ready inspection report of ``scan``."""
    records = scan.records
    splits: dict[str, dict[str, Any]] = {}
    for split in sorted({r.split for r in records}, key=_split_order):
        real = sum(1 for r in records if r.split == split and r.label == 0)
        fake = sum(1 for r in records if r.split == split and r.label == 1)
        share = round(fake / (real + fake), 4) if real + fake else None
        splits[split] = {"real": real, "ai-generated": fake, "total": real + fake, "ai_share": share}
    readable = [r for r in records if r.width is not None]
    common_sizes = Counter((r.width, r.height) for r in readable).most_common(10)
    within, across = find_duplicates(records)
    return {
        "root": str(scan.root),
        "layout": scan.layout,
        "images": len(records),
        "bytes": sum(r.nbytes for r in records),
        "splits": splits,
        "formats": dict(Counter(r.format or "unknown" for r in records).most_common()),
        "modes": dict(Counter(r.mode or "unknown" for r in records).most_common()),
        "sizes": {
            "distinct": len({(r.width, r.height) for r in readable}),
            "most_common": [[f"{w}x{h}", n] for (w, h), n in common_sizes],
            "width": _stats([r.width for r in readable]),
            "height": _stats([r.height for r in readable]),
        },
        "unreadable": [
            {"path": r.relpath, "split": r.split, "label": LABEL_NAMES[r.label], "reason": r.problem}
            for r in records
            if r.problem is not None
        ],
        "duplicates": {
            "within_split_groups": len(within),
            "within_split_extra_copies": sum(len(g["paths"]) - 1 for g in within),
            "cross_split_groups": len(across),
            "label_conflicts": sum(1 for g in within + across if len(g["labels"]) > 1),
            "within_split": within,
            "cross_split": across,
        },
        "seconds": round(scan.seconds, 2),
    }


def format_summary(report: dict[str, Any], examples: int = 3) -> str:
    """A human-readable summary of an inspection report."""
    lines = [
        f"Dataset: {report['root']} (layout: {report['layout']}), {report['images']} images, "
        f"{report['bytes'] / 1e6:.1f} MB, scanned in {report['seconds']:.1f} s",
        f"{'split':<12}{'real':>9}{'ai-generated':>14}{'total':>9}{'ai share':>10}",
    ]
    for split, row in report["splits"].items():
        share = f"{row['ai_share']:.1%}" if row["ai_share"] is not None else "-"
        lines.append(f"{split:<12}{row['real']:>9}{row['ai-generated']:>14}{row['total']:>9}{share:>10}")
    sizes = report["sizes"]
    lines.append("Formats: " + ", ".join(f"{k} {v}" for k, v in report["formats"].items()))
    lines.append("Colour modes: " + ", ".join(f"{k} {v}" for k, v in report["modes"].items()))
    lines.append(
        f"Sizes: {sizes['distinct']} distinct; most common "
        + ", ".join(f"{s} ({n})" for s, n in sizes["most_common"][:5])
    )
    lines.append(f"Unreadable files: {len(report['unreadable'])}")
    lines.extend(f"  {u['path']}: {u['reason']}" for u in report["unreadable"][:examples])
    dup = report["duplicates"]
    lines.append(
        f"Exact duplicates within a split: {dup['within_split_groups']} groups "
        f"({dup['within_split_extra_copies']} extra copies)"
    )
    lines.extend(f"  {g['split']}: {' == '.join(g['paths'][:3])}" for g in dup["within_split"][:examples])
    lines.append(f"Exact duplicates across splits (leaks): {dup['cross_split_groups']} groups")
    for group in dup["cross_split"][:examples]:
        lines.append("  " + " == ".join(p for paths in group["paths"].values() for p in paths[:2]))
    if dup["label_conflicts"]:
        lines.append(f"Duplicate groups labelled both real and AI-generated: {dup['label_conflicts']}")
    return "\n".join(lines)


def write_inspection(scan: Scan, report: dict[str, Any], out: Path, samples_per_class: int = 8) -> list[Path]:
    """Write ``report.json`` and the PNG figures into ``out``; return the written paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json"]
    written[0].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    figures = {
        "class_balance.png": plot_class_balance(report),
        "image_sizes.png": plot_image_sizes(scan.records),
        "samples.png": plot_samples(scan, samples_per_class),
    }
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=100, bbox_inches="tight")
        written.append(out / name)
    return written


def plot_class_balance(report: dict[str, Any]) -> Any:
    """Bars of real and AI-generated images per split (a matplotlib Figure)."""
    from matplotlib.figure import Figure

    splits = list(report["splits"])
    figure = Figure(figsize=(1.8 * len(splits) + 3, 3.5))
    axes = figure.subplots()
    width = 0.38
    for offset, name, colour in ((-width / 2, "real", "tab:blue"), (width / 2, "ai-generated", "tab:orange")):
        positions = [i + offset for i in range(len(splits))]
        heights = [report["splits"][s][name] for s in splits]
        bars = axes.bar(positions, heights, width, label=name, color=colour)
        axes.bar_label(bars, fontsize=8)
    axes.set_xticks(range(len(splits)), splits)
    axes.set_ylabel("images")
    axes.set_title("Class balance per split")
    axes.legend()
    return figure


def plot_image_sizes(records: list[ImageRecord]) -> Any:
    """Histograms of image widths and heights in pixels (a matplotlib Figure)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.2))
    for axes, attribute in zip(figure.subplots(1, 2), ("width", "height"), strict=True):
        values = [getattr(r, attribute) for r in records if getattr(r, attribute) is not None]
        axes.hist(values or [0], bins=30, color="tab:gray")
        axes.set_xlabel(f"{attribute} (pixels)")
        axes.set_ylabel("images")
    figure.suptitle("Image sizes")
    return figure


def plot_samples(scan: Scan, per_class: int = 8, seed: int = 0) -> Any:
    """A grid of random readable images, one row per class (a matplotlib Figure)."""
    import numpy as np
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    figure = Figure(figsize=(1.3 * per_class, 3))
    grid = figure.subplots(2, per_class, squeeze=False)
    for label, row in enumerate(grid):
        members = [r for r in scan.records if r.label == label and r.problem is None]
        chosen = [members[i] for i in rng.permutation(len(members))[:per_class]]
        for axes in row:
            axes.axis("off")
        for axes, record in zip(row, chosen, strict=False):
            with Image.open(scan.path(record)) as image:
                image.thumbnail((160, 160))
                axes.imshow(np.asarray(image.convert("RGB")))
            axes.set_title(record.split, fontsize=7)
        row[0].text(-0.1, 0.5, LABEL_NAMES[label], transform=row[0].transAxes, ha="right", va="center")
    figure.suptitle("Sample images per class")
    return figure


def records_as_dicts(records: list[ImageRecord]) -> list[dict[str, Any]]:
    """The records as plain dicts (for JSON or pandas)."""
    return [asdict(r) for r in records]


def _scan_file(dataset_root: Path, item: tuple[str, int, str], check: Any) -> ImageRecord:
    split, label, path = item
    relpath = os.path.relpath(path, dataset_root)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        return ImageRecord(relpath, split, label, "", 0, None, None, None, None, f"unreadable file: {error}")
    width = height = fmt = mode = None
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            (width, height), fmt, mode = image.size, image.format, image.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        pass
    problem = check(path) if check else (None if fmt else "not an image")
    digest = hashlib.sha256(data).hexdigest()
    return ImageRecord(relpath, split, label, digest, len(data), width, height, fmt, mode, problem)


def _stats(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _split_order(split: str) -> tuple[int, str]:
    return (SPLITS.index(split) if split in SPLITS else len(SPLITS), split)


def progress_bar(total: int, description: str, enabled: bool = True) -> Any:
    """A tqdm progress bar on stderr (a silent one when not ``enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img", disable=not enabled, mininterval=0.5)
