"""Filter and augmentation studies: one model per variant on the same data subset, one table each.

``python -m aiclassify.study filters --data DIR`` trains the model once per input filter
(``data.filter``), tests each on the clean test subset, the robustness tiers and, with its input
filter replaced by every other filter, on differently filtered test images (a train-filter x
test-filter matrix). ``python -m aiclassify.study augment --data DIR`` trains it once per set of
training augmentations (``train.augment``). Each variant is an :func:`aiclassify.compare.compare`
run in ``<out>/<variant>/``, so finished variants are reused; the tables are printed and written to
``<out>/study.md`` and ``<out>/study.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiclassify.data.augment import AUGMENT_NAMES
from aiclassify.filters import FILTER_NAMES as FILTERS
from aiclassify.logs import setup_logging

AUGMENT_SETS = {
    "none": (),
    "flips": ("hflip", "vflip"),
    "jpeg_downscale": ("jpeg", "downscale"),
    "noise": ("noise",),
    "color_jitter": ("color_jitter",),
    "crop_resize": ("crop_resize",),
    "all": AUGMENT_NAMES,
}
COLUMNS = {
    "accuracy": "test accuracy",
    "roc_auc": "ROC-AUC",
    "acc_jpeg_q90": "JPEG q90",
    "acc_jpeg_q75": "JPEG q75",
    "acc_jpeg_q50": "JPEG q50",
    "acc_downscale_half": "downscale x0.5",
    "acc_blur_sigma1": "blur sigma 1",
    "acc_centre_crop": "centre crop 80%",
    "epochs": "epochs",
    "train_seconds": "training s",
}


def variant_overrides(kind: str, variant: str) -> list[str]:
    """The ``--set`` overrides that make ``variant`` of a ``filters`` or ``augment`` study."""
    if kind == "filters" and variant in FILTERS:
        return [f"data.filter={variant}"]
    if kind == "augment" and variant in AUGMENT_SETS:
        return [f"train.augment=[{', '.join(AUGMENT_SETS[variant])}]"]
    valid = list(FILTERS) if kind == "filters" else list(AUGMENT_SETS)
    raise ValueError(f"Unknown {kind} study variant. Valid variants: {valid}. Received: variant={variant!r}")


def _number(value: Any, key: str = "") -> str:
    if value is None:
        return "n/a"
    if key == "train_seconds":
        return f"{value:.0f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def results_table(rows: Sequence[Mapping[str, Any]], first: str) -> list[str]:
    """Markdown lines: one row per variant (clean accuracy, AUC, robustness tiers, training)."""
    keys = [key for key in COLUMNS if any(key in row for row in rows)]
    cells = [[row["variant"], *(_number(row.get(key), key) for key in keys)] for row in rows]
    return _markdown([first, *(COLUMNS[key] for key in keys)], cells)


def cross_matrix(reports: Mapping[str, Mapping[str, Any]], metric: str = "accuracy") -> list[str]:
    """Markdown lines: rows are training filters, columns test filters, cells ``metric`` (n/a: none)."""
    tested = list(dict.fromkeys(r["filter"] for rep in reports.values() for r in rep["cross_filter"]["rows"]))
    rows = []
    for trained, report in reports.items():
        cells = {r["filter"]: r[metric] for r in report["cross_filter"]["rows"]}
        rows.append([trained, *(_number(cells.get(name)) for name in tested)])
    return _markdown(["trained \\ tested", *tested], rows)


def run_study(
    kind: str,
    data: Path,
    out: Path,
    model: str = "cnn_small3",
    config: str = "cifake.yaml",
    epochs: int = 8,
    subset: Mapping[str, int] | None = None,
    overrides: Sequence[str] = (),
    variants: Sequence[str] | None = None,
    tiers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train and evaluate ``model`` once per variant of a ``filters`` or ``augment`` study.

    Returns (and writes to ``<out>/study.json`` and ``<out>/study.md``) the rows and, for the
    filter study, the cross-filter accuracy and ROC-AUC matrices.
    """
    from aiclassify.compare import compare, table_row
    from aiclassify.runs import read_json

    if kind not in ("filters", "augment"):
        raise ValueError(f"kind must be 'filters' or 'augment'. Received: kind={kind!r}")
    names = list(variants) if variants else list(FILTERS if kind == "filters" else AUGMENT_SETS)
    sets = {name: variant_overrides(kind, name) for name in names}
    base = [*overrides, f"data.path={Path(data).resolve()}", f"train.epochs={epochs}"]
    subset = {"train": 2500, "test": 1000} if subset is None else subset
    cross = list(FILTERS) if kind == "filters" else None
    rows, reports = [], {}
    for name, extra in sets.items():
        started = time.perf_counter()
        folder = Path(out) / name
        compare(config, [model], [*base, *extra], folder, subset, tiers, figures=False, cross_filters=cross)
        reports[name] = read_json(folder / model / "report.json")
        row = {"variant": name, **table_row(model, reports[name])}
        rows.append({**row, "wall_seconds": round(time.perf_counter() - started, 1)})
    report = next(iter(reports.values()))
    study = {
        "kind": kind,
        "model": model,
        "config": config,
        "epochs": epochs,
        "subset_per_class": dict(subset),
        "test_examples": report["data"]["test_examples"],
        "variants": {name: extra for name, extra in sets.items()},
        "rows": rows,
    }
    lines = results_table(rows, "filter" if kind == "filters" else "augment")
    if kind == "filters":
        study["cross_filter"] = {
            metric: {
                t: {r["filter"]: r[metric] for r in rep["cross_filter"]["rows"]} for t, rep in reports.items()
            }
            for metric in ("accuracy", "roc_auc")
        }
        lines += ["", "Cross-filter test accuracy:", "", *cross_matrix(reports)]
        lines += ["", "Cross-filter test ROC-AUC:", "", *cross_matrix(reports, "roc_auc")]
    study["markdown"] = "\n".join(lines) + "\n"
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    (Path(out) / "study.md").write_text(study["markdown"])
    return study


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the study command."""
    parser = argparse.ArgumentParser(prog="aiclassify study", description=__doc__)
    parser.add_argument("kind", choices=("filters", "augment"), help="which study")
    parser.add_argument("--data", required=True, type=Path, help="the dataset folder, e.g. CIFAKE")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/<kind>-study)")
    parser.add_argument("--model", default="cnn_small3", help="model name (default: cnn_small3)")
    parser.add_argument("--config", default="cifake.yaml", help="config file or name (default: cifake.yaml)")
    parser.add_argument("--epochs", type=int, default=8, help="most epochs per model (default: 8)")
    parser.add_argument(
        "--subset",
        action="append",
        default=[],
        metavar="SPLIT=N",
        help="images per class (default: train=2500 test=1000)",
    )
    parser.add_argument("--variants", help="comma-separated subset of the study's variants (default: all)")
    parser.add_argument("--tiers", help="comma-separated robustness tiers (default: all)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the study and print its tables."""
    args = parse_args(argv)
    setup_logging()
    from aiclassify.compare import parse_subset
    from aiclassify.runs import RunDirectoryError

    started = time.perf_counter()
    try:
        study = run_study(
            args.kind,
            args.data,
            args.out or Path("runs") / f"{args.kind.removesuffix('s')}-study",
            model=args.model,
            config=args.config,
            epochs=args.epochs,
            subset=parse_subset(args.subset) if args.subset else None,
            overrides=args.overrides,
            variants=[v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None,
            tiers=None if args.tiers is None else [t for t in args.tiers.split(",") if t and t != "none"],
        )
    except (ValueError, FileNotFoundError, RunDirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(study["markdown"], end="")
    print(f"\nStudy took {time.perf_counter() - started:.0f} s (finished variants are reused).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
