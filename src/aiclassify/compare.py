"""Train and evaluate several models on the same splits, and write one comparison table.

``python -m aiclassify.compare --config cifake.yaml --models cnn5,cnn_small2,lenet5 [--set K=V ...]``

Every model gets the same config (and so the same seeded splits) with only ``model.name`` changed;
each run lands in ``<out>/<model>/`` with its own report, and ``<out>/comparison.{md,csv,json}``
holds the table. Finished runs in ``<out>`` are reused, so an interrupted comparison resumes.
``--subset train=3000 --subset test=1000`` first links a seeded per-class sample of the dataset
into ``<out>/data`` (for quick comparisons on a large dataset).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiclassify.logs import setup_logging

logger = logging.getLogger("aiclassify.compare")

COLUMNS = {
    "model": "model",
    "parameters": "parameters",
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "F1",
    "roc_auc": "ROC-AUC",
    "average_precision": "AP",
    "ece_after": "ECE (T-scaled)",
    "train_seconds": "train s",
    "epochs": "epochs",
}
TABLE_FILES = ("comparison.md", "comparison.csv", "comparison.json")


def make_subset(root: Path, dest: Path, per_class: Mapping[str, int], seed: int) -> Path:
    """Hard-link (or copy) a seeded sample of ``per_class[split]`` images per class into ``dest``.

    Splits not named in ``per_class`` are linked whole; folder names are kept so the subset has
    the dataset's layout. An existing subset made with the same parameters is reused.
    """
    from aiclassify.data.layouts import SPLIT_NAMES, class_dirs, find_dataset_root, list_images, split_dirs

    dataset = find_dataset_root(Path(root))
    parameters = {"root": str(dataset), "per_class": dict(sorted(per_class.items())), "seed": seed}
    marker = Path(dest) / "subset.json"
    if marker.is_file() and json.loads(marker.read_text()) == parameters:
        return Path(dest)
    shutil.rmtree(dest, ignore_errors=True)
    folders = {child.name: child for child in split_dirs(dataset).values()} if split_dirs(dataset) else {}
    for split_name, folder in (folders or {"train": dataset}).items():
        limit = per_class.get(SPLIT_NAMES.get(split_name.lower(), split_name.lower()))
        classes = class_dirs(folder)
        for label, class_folder in enumerate((classes["real"], classes["fake"])):
            files = list_images(class_folder)
            if limit is not None and limit < len(files):
                order = np.random.default_rng([seed, label, len(files)]).permutation(len(files))[:limit]
                files = [files[i] for i in sorted(order)]
            target = Path(dest) / (split_name if folders else "") / class_folder.name
            target.mkdir(parents=True, exist_ok=True)
            for source in files:
                _link(Path(source), target / Path(source).name)
    marker.write_text(json.dumps(parameters, indent=2))
    return Path(dest)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def parse_subset(values: Sequence[str]) -> dict[str, int]:
    """``SPLIT=N`` options (split: train, validation or test) as a mapping."""
    subset = {}
    for value in values:
        split, _, count = value.partition("=")
        if split not in ("train", "validation", "test") or not count.isdigit() or int(count) < 1:
            raise ValueError(
                f"--subset must look like train=3000 (train, validation or test). Received: {value!r}"
            )
        subset[split] = int(count)
    return subset


def table_row(model: str, report: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the comparison table, every number read from the run's report."""
    test, training = report["test"], report["training"]
    row = {
        "model": model,
        "parameters": report["parameters"],
        **{
            key: test[key]
            for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")
        },
        "ece_after": report["calibration"]["test_ece_after"],
        "train_seconds": None
        if training.get("train_seconds") is None
        else round(training["train_seconds"], 1),
        "epochs": training.get("epochs_completed"),
    }
    for tier in report["robustness"]:
        if tier["tier"] != "clean":
            row[f"acc_{tier['tier']}"] = tier["accuracy"]
    return row


def _cell(key: str, value: Any) -> Any:
    if key == "train_seconds" and isinstance(value, float):
        return f"{value:.1f}"
    return value


def write_tables(rows: Sequence[dict[str, Any]], out: Path, title: str) -> list[Path]:
    """Write the table as Markdown, CSV and JSON into ``out``."""
    from aiclassify.evaluate.markdown import table

    keys = list(dict.fromkeys(key for row in rows for key in row))
    headers = [COLUMNS.get(key, key.replace("acc_", "acc ")) for key in keys]
    cells = [[_cell(key, row.get(key)) for key in keys] for row in rows]
    markdown = [f"# {title}", "", *table(headers, cells), ""]
    (out / TABLE_FILES[0]).write_text("\n".join(markdown))
    with (out / TABLE_FILES[1]).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    (out / TABLE_FILES[2]).write_text(json.dumps({"title": title, "rows": list(rows)}, indent=2) + "\n")
    return [out / name for name in TABLE_FILES]


def compare(
    config_name: str,
    models: Sequence[str],
    overrides: Sequence[str] = (),
    out: Path | None = None,
    subset: Mapping[str, int] | None = None,
    tiers: Sequence[str] | None = None,
    overwrite: bool = False,
    figures: bool = True,
    cross_filters: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Train (unless already finished in ``out``) and evaluate each model; return the table rows.

    ``cross_filters`` adds each report's ``cross_filter`` section (see ``evaluate --cross-filters``).
    """
    from aiclassify.config import load_config
    from aiclassify.data.sources import dataset_root
    from aiclassify.evaluate.report import evaluate_run
    from aiclassify.runs import METADATA_FILE
    from aiclassify.train import train

    if not models:
        raise ValueError("--models must name at least one model.")
    base = load_config(config_name, overrides)
    out = Path(out) if out else default_out(base.name)
    out.mkdir(parents=True, exist_ok=True)
    overrides = list(overrides)
    if subset:
        data = make_subset(dataset_root(base.data, base.train.seed), out / "data", subset, base.train.seed)
        overrides += ["data.source=folder", f"data.path={data.resolve()}"]
    rows = []
    for model in models:
        config = load_config(config_name, [*overrides, f"model.name={model}", f"name={base.name}-{model}"])
        workdir = out / model
        started = time.perf_counter()
        if overwrite or not (workdir / METADATA_FILE).is_file():
            train(config, workdir, overwrite=overwrite)
        else:
            logger.info("Reusing the finished run in %s", workdir)
        report = evaluate_run(workdir, tiers=tiers, draw_figures=figures, cross_filters=cross_filters)
        rows.append(table_row(model, report))
        logger.info(
            "%s done in %.0f s: test accuracy %.4f",
            model,
            time.perf_counter() - started,
            rows[-1]["accuracy"],
        )
    data = report["data"]
    write_tables(
        rows, out, f"Model comparison: {base.name} ({data['test_examples']} test images, {data['root']})"
    )
    return rows


def default_out(name: str) -> Path:
    """Where a comparison of config ``name`` goes unless ``--out`` says otherwise."""
    return Path("runs") / f"compare-{name}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the compare command."""
    parser = argparse.ArgumentParser(prog="aiclassify compare", description=__doc__)
    parser.add_argument("--config", required=True, help="config file, or a bare name from configs/")
    parser.add_argument("--models", required=True, help="comma-separated model names, e.g. cnn5,lenet5")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/compare-<config name>)")
    parser.add_argument("--subset", action="append", default=[], metavar="SPLIT=N", help="images per class")
    parser.add_argument("--tiers", help="comma-separated robustness tiers (default: all; 'none': clean only)")
    parser.add_argument("--cross-filters", help="also test each model with these input filters (or 'all')")
    parser.add_argument("--no-figures", action="store_true", help="skip the per-run figures (faster)")
    parser.add_argument("--overwrite", action="store_true", help="retrain models already finished in --out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the comparison and print the Markdown table."""
    args = parse_args(argv)
    setup_logging()
    from aiclassify.runs import RunDirectoryError

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    tiers = None if args.tiers is None else [t for t in args.tiers.split(",") if t and t != "none"]
    try:
        cross_filters = None
        if args.cross_filters:
            from aiclassify.evaluate.cross_filter import parse_filters

            cross_filters = parse_filters(args.cross_filters)
        compare(
            args.config,
            models,
            args.overrides,
            args.out,
            parse_subset(args.subset),
            tiers,
            args.overwrite,
            figures=not args.no_figures,
            cross_filters=cross_filters,
        )
    except (ValueError, FileNotFoundError, RunDirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from aiclassify.config import load_config

    out = args.out or default_out(load_config(args.config, args.overrides).name)
    print((out / TABLE_FILES[0]).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
