"""Evaluate a finished run: write ``report.json``, ``report.md``, ``figures/`` and ``calibration.json``.

``calibration.json`` holds what the predictor serves: the temperature, the operating points and the
inconclusive band (``band``: ``lower``/``upper`` on the calibrated probability, chosen on validation
for ``band_fpr``, see :func:`aiclassify.evaluate.operating_points.choose_band`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiclassify import runs
from aiclassify.calibration import (
    apply_temperature,
    calibration_summary,
    expected_calibration_error,
    reliability_curve,
)
from aiclassify.evaluate import figures
from aiclassify.evaluate.cross_filter import cross_filter_section
from aiclassify.evaluate.markdown import render_markdown
from aiclassify.evaluate.operating_points import (
    BAND_CONFIDENCE,
    BAND_FPR,
    band_summary,
    choose_band,
    choose_operating_points,
    rates,
)
from aiclassify.evaluate.robustness import TIER_LABELS, TIERS
from aiclassify.evaluate.scoring import ScoredSet, evaluation_splits, folder_samples, score_samples
from aiclassify.metrics import accuracy_and_auc, classification_summary
from aiclassify.predict import Predictor
from aiclassify.predict.band import RULE

logger = logging.getLogger("aiclassify.evaluate")


def evaluate_run(
    run_dir: Path,
    data_dir: Path | None = None,
    ood: Mapping[str, Path] | None = None,
    tiers: Sequence[str] | None = None,
    batch_size: int = 64,
    grid_images: int = 24,
    write_calibration: bool = True,
    draw_figures: bool = True,
    cross_filters: Sequence[str] | None = None,
    band_fpr: float = BAND_FPR,
    faces: Mapping[str, Path] | None = None,
    band_confidence: float = BAND_CONFIDENCE,
) -> dict[str, Any]:
    """Score the run's validation and test splits (clean and every robustness tier) and any OOD sets.

    With ``faces`` (name to a labelled folder of whole photos), each photo's faces are found and
    scored through the face path (the report's ``faces`` section, :mod:`aiclassify.evaluate.faces`).

    With ``cross_filters`` (filter names), the test split is also scored with the model's input
    filter replaced by each of them (the report's ``cross_filter`` section, see
    :mod:`aiclassify.evaluate.cross_filter`). ``band_fpr`` is the rate both ends of the inconclusive
    band are chosen for (share of real images called ai-generated, share of AI-generated images
    called real, on validation), met by the rates' upper bound at ``band_confidence``.

    Writes ``report.json``, ``report.md`` and ``figures/*.png`` into ``run_dir`` and, unless
    ``write_calibration`` is false, ``calibration.json`` (the temperature, operating points and band
    the predictor serves). Training's files are only read. Scores are pixels only: image metadata
    never reaches the model.
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    predictor = Predictor.load(run_dir, batch_size)
    metadata = predictor.metadata
    threshold = float(metadata["threshold"])
    root, splits = evaluation_splits(run_dir, data_dir)
    logger.info(
        "Scoring %d validation and %d test images from %s",
        len(splits["validation"]),
        len(splits["test"]),
        root,
    )
    validation = score_samples(predictor, "validation", splits["validation"])
    test = score_samples(predictor, "test", splits["test"])

    calibration = calibration_summary(validation.labels, validation.probabilities)
    temperature = calibration["temperature"]
    calibrated = {s.name: apply_temperature(s.probabilities, temperature) for s in (validation, test)}
    points = choose_operating_points(validation.labels, calibrated["validation"])
    band = choose_band(validation.labels, calibrated["validation"], band_fpr, band_confidence)

    report: dict[str, Any] = {
        "run": metadata.get("name"),
        "model": metadata.get("model"),
        "parameters": metadata.get("parameters"),
        "image_size": metadata.get("image_size"),
        "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": {
            "root": str(root),
            "from": "--data" if data_dir else "run config",
            "validation_examples": len(validation.labels),
            "test_examples": len(test.labels),
        },
        "threshold": threshold,
        "training": _training_summary(run_dir),
        "test": classification_summary(test.labels, test.probabilities, threshold),
        "validation": classification_summary(validation.labels, validation.probabilities, threshold),
        "calibration": {
            **calibration,
            "test_ece_before": expected_calibration_error(test.labels, test.probabilities),
            "test_ece_after": expected_calibration_error(test.labels, calibrated["test"]),
            "test_reliability": reliability_curve(test.labels, test.probabilities).to_dict(),
        },
        "operating_points": [
            {**point, "test": rates(test.labels, calibrated["test"], point["threshold"])} for point in points
        ],
        "band": {
            "rule": RULE,
            **band,
            "test": band_summary(test.labels, calibrated["test"], band["lower"], band["upper"]),
        },
    }
    report["robustness"] = _robustness(predictor, splits["test"], test, threshold, tiers)
    if cross_filters:
        report["cross_filter"] = cross_filter_section(predictor, splits["test"], cross_filters, threshold)
    report["ood"] = {
        name: {"root": str(path), **_ood_summary(predictor, name, Path(path), threshold)}
        for name, path in (ood or {}).items()
    }
    if faces:
        report["faces"] = _face_sections(predictor, faces, threshold)
    report["figures"] = (
        _draw_figures(run_dir, report, test, calibrated["test"], points, grid_images) if draw_figures else {}
    )
    report["evaluation_seconds"] = round(time.perf_counter() - started, 1)
    runs.write_json(run_dir / runs.REPORT_JSON, report)
    (run_dir / runs.REPORT_MD).write_text(render_markdown(report))
    if write_calibration:
        write_calibration_file(run_dir, calibration, points, report["evaluated"], band)
    logger.info(
        "Wrote %s and %s in %.1f s",
        run_dir / runs.REPORT_JSON,
        run_dir / runs.REPORT_MD,
        report["evaluation_seconds"],
    )
    return report


def load_report(run_dir: Path, evaluate_if_missing: bool = False) -> dict[str, Any]:
    """The report.json of an evaluated run (evaluating it first if asked and it has none)."""
    path = Path(run_dir) / runs.REPORT_JSON
    if not path.is_file():
        if not evaluate_if_missing:
            raise FileNotFoundError(f"{path} not found: run python -m aiclassify.evaluate --run {run_dir}")
        return evaluate_run(run_dir)
    return runs.read_json(path)


def figure_paths(run_dir: Path, report: Mapping[str, Any]) -> dict[str, Path]:
    """Absolute paths of the report's figures."""
    return {name: Path(run_dir) / relative for name, relative in report["figures"].items()}


def write_calibration_file(
    run_dir: Path,
    calibration: Mapping[str, Any],
    points: Sequence[dict],
    evaluated: str,
    band: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``calibration.json``: the temperature, operating points and band fitted on validation."""
    path = Path(run_dir) / runs.CALIBRATION_FILE
    extra = {} if band is None else {"band": calibration_band(band)}
    runs.write_json(
        path,
        {
            **{key: calibration[key] for key in ("temperature", "ece_before", "ece_after", "fitted_on")},
            "operating_points": [
                {key: point[key] for key in ("name", "target_fpr", "threshold", "fpr", "tpr")}
                for point in points
            ],
            **extra,
            "evaluated": evaluated,
        },
    )
    return path


def calibration_band(band: Mapping[str, Any]) -> dict[str, Any]:
    """The band as ``calibration.json`` stores it: thresholds, target, and the validation rates."""
    stored = {key: band[key] for key in ("lower", "upper", "target_fpr", "confidence", "empty")}
    for key in ("note", "notes"):
        if band.get(key):
            stored[key] = band[key]
    stored["validation"] = {
        key: band["validation"][key] for key in ("coverage", "confident_accuracy", "fpr", "recall", "fnr")
    }
    return stored


def _training_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / runs.METRICS_FILE
    metrics = runs.read_json(path) if path.is_file() else {}
    return {key: metrics.get(key) for key in ("train_seconds", "epochs_completed", "best_epoch")}


def _robustness(
    predictor: Predictor, samples: list, clean: ScoredSet, threshold: float, tiers: Sequence[str] | None
) -> list[dict[str, Any]]:
    names = list(TIERS) if tiers is None else ["clean", *[t for t in tiers if t != "clean"]]
    unknown = sorted(set(names) - set(TIERS))
    if unknown:
        raise ValueError(f"Unknown robustness tier(s) {unknown}. Valid tiers: {list(TIERS)}")
    rows = []
    for name in names:
        scored = clean if TIERS[name] is None else score_samples(predictor, name, samples, TIERS[name])
        rows.append(
            {
                "tier": name,
                "label": TIER_LABELS[name],
                **accuracy_and_auc(scored.labels, scored.probabilities, threshold),
            }
        )
        logger.info("Robustness %-15s accuracy %.4f", name, rows[-1]["accuracy"])
    return rows


def _face_sections(predictor: Predictor, folders: Mapping[str, Path], threshold: float) -> dict[str, Any]:
    from aiclassify.evaluate.faces import face_path_section
    from aiclassify.faces import FaceDetector, FaceFinder
    from aiclassify.predict import FacePath

    path = FacePath(FaceFinder(FaceDetector()), predictor)
    return {
        name: face_path_section(predictor, path, name, Path(folder), threshold)
        for name, folder in folders.items()
    }


def _ood_summary(predictor: Predictor, name: str, path: Path, threshold: float) -> dict[str, Any]:
    samples = folder_samples(path)
    if not samples:
        raise ValueError(f"--ood {name}: no readable images under {path}")
    scored = score_samples(predictor, name, samples)
    summary = classification_summary(scored.labels, scored.probabilities, threshold)
    summary["mean_probability_ai"] = float(np.mean(scored.probabilities))
    return summary


def _draw_figures(
    run_dir: Path,
    report: dict[str, Any],
    test: ScoredSet,
    test_calibrated: np.ndarray,
    points: Sequence[dict],
    grid_images: int,
) -> dict[str, str]:
    folder = run_dir / runs.FIGURES_DIR
    threshold = report["threshold"]
    drawn: dict[str, Path] = {}
    history = runs.read_history(run_dir)
    if history:
        drawn["training_curves"] = figures.training_curves(history, folder / "training_curves.png")
    if len(np.unique(test.labels)) == 2:
        test_points = [
            {"name": p["name"], **rates(test.labels, test_calibrated, p["threshold"])} for p in points
        ]
        drawn["roc"] = figures.roc(test.labels, test_calibrated, folder / "roc.png", test_points)
        drawn["precision_recall"] = figures.precision_recall(
            test.labels, test.probabilities, folder / "pr.png"
        )
    drawn["confusion_matrix"] = figures.confusion(
        report["test"]["confusion_matrix"], folder / "confusion_matrix.png", threshold
    )
    curves = {
        "test, uncalibrated": reliability_curve(test.labels, test.probabilities),
        f"test, T={report['calibration']['temperature']:.2f}": reliability_curve(
            test.labels, test_calibrated
        ),
    }
    drawn["reliability"] = figures.reliability(curves, folder / "reliability.png")
    drawn["robustness"] = figures.robustness_bars(report["robustness"], folder / "robustness.png")
    count = min(grid_images, len(test.paths))
    if count:
        drawn["test_grid"] = figures.image_grid(
            test.paths[:count],
            test.labels[:count],
            test.probabilities[:count],
            threshold,
            folder / "test_grid.png",
        )
    return {name: str(path.relative_to(run_dir)) for name, path in drawn.items()}
