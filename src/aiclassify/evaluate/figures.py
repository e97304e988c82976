"""Report figures, drawn with Matplotlib's object-oriented API (no pyplot, no display needed).

Each function draws one PNG into ``path`` and returns it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from aiclassify import LABEL_NAMES
from aiclassify.calibration import ReliabilityCurve

DPI = 110


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path


def training_curves(history: Sequence[dict[str, str]], path: Path) -> Path:
    """Loss and accuracy per epoch, training and validation, from history.csv rows."""
    figure = Figure(figsize=(9, 3.5))
    epochs = [int(row["epoch"]) + 1 for row in history]
    for axis, metric in zip(figure.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = [float(row[key]) if row.get(key) else np.nan for row in history]
            axis.plot(epochs, values, marker="o", label=label)
        axis.set(title=metric, xlabel="epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    return _save(figure, path)


def roc(
    labels: np.ndarray, probabilities: np.ndarray, path: Path, operating_points: Sequence[dict] = ()
) -> Path:
    """ROC curve with its AUC, and the chosen operating points (measured on this set) marked."""
    figure = Figure(figsize=(4.5, 4.5))
    axis = figure.subplots()
    RocCurveDisplay.from_predictions(labels, probabilities, ax=axis, name="model", pos_label=1)
    for point in operating_points:
        axis.scatter([point["fpr"]], [point["tpr"]], zorder=3, label=point["name"])
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axis.legend(loc="lower right")
    axis.set_title("ROC (positive: AI-generated)")
    return _save(figure, path)


def precision_recall(labels: np.ndarray, probabilities: np.ndarray, path: Path) -> Path:
    """Precision-recall curve with average precision."""
    figure = Figure(figsize=(4.5, 4.5))
    axis = figure.subplots()
    PrecisionRecallDisplay.from_predictions(labels, probabilities, ax=axis, name="model", pos_label=1)
    axis.set_title("Precision-recall (positive: AI-generated)")
    return _save(figure, path)


def confusion(matrix: np.ndarray, path: Path, threshold: float) -> Path:
    """Confusion matrix (rows: true label, columns: predicted) at ``threshold``."""
    figure = Figure(figsize=(4.5, 4))
    axis = figure.subplots()
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(LABEL_NAMES)).plot(ax=axis, colorbar=False)
    axis.set_title(f"Confusion matrix (threshold {threshold:.3g})")
    return _save(figure, path)


def reliability(curves: dict[str, ReliabilityCurve], path: Path) -> Path:
    """Reliability diagram: mean P(AI) against the observed AI fraction per bin, one line per curve."""
    figure = Figure(figsize=(4.8, 5.5))
    top, bottom = figure.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, curve in curves.items():
        filled = curve.counts > 0
        top.plot(curve.mean_predicted[filled], curve.fraction_positive[filled], marker="o", label=name)
    first = next(iter(curves.values()))
    centres = (first.edges[:-1] + first.edges[1:]) / 2
    bottom.bar(centres, first.counts, width=np.diff(first.edges), edgecolor="black", alpha=0.6)
    top.set(ylabel="fraction AI-generated", title="Reliability diagram", xlim=(0, 1), ylim=(0, 1))
    bottom.set(xlabel="predicted P(AI-generated)", ylabel="images")
    top.legend(fontsize="small")
    return _save(figure, path)


def robustness_bars(rows: Sequence[dict], path: Path) -> Path:
    """Accuracy and ROC-AUC for each robustness tier, side by side."""
    figure = Figure(figsize=(8, 4))
    axis = figure.subplots()
    positions = np.arange(len(rows))
    accuracy = [row["accuracy"] for row in rows]
    auc = [row["roc_auc"] if row["roc_auc"] is not None else np.nan for row in rows]
    axis.bar(positions - 0.2, accuracy, width=0.4, label="accuracy")
    axis.bar(positions + 0.2, auc, width=0.4, label="ROC-AUC")
    axis.set_xticks(positions, [row["label"] for row in rows], rotation=30, ha="right")
    axis.set(ylim=(0, 1.2), yticks=np.linspace(0, 1, 6), title="Robustness tiers (test set)")
    axis.axhline(0.5, linestyle=":", color="grey", label="chance")
    axis.legend(loc="upper center", ncols=3)
    return _save(figure, path)


def image_grid(
    paths: Sequence[str],
    labels: Sequence[int],
    probabilities: Sequence[float],
    threshold: float,
    path: Path,
    columns: int = 6,
) -> Path:
    """Test images with true label, predicted label and P(AI); misclassified ones framed in red."""
    count = len(paths)
    rows = max(1, math.ceil(count / columns))
    figure = Figure(figsize=(2.1 * columns, 2.4 * rows))
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axis in axes:
        axis.set_axis_off()
    for axis, image_path, label, probability in zip(axes, paths, labels, probabilities, strict=False):
        predicted = int(probability >= threshold)
        wrong = predicted != int(label)
        with Image.open(image_path) as image:
            axis.imshow(np.asarray(image.convert("RGB")))
        axis.set_axis_on()
        axis.set_xticks([])
        axis.set_yticks([])
        colour = "red" if wrong else "green"
        for spine in axis.spines.values():
            spine.set(color=colour, linewidth=3 if wrong else 1)
        mark = "WRONG " if wrong else ""
        axis.set_title(
            f"{mark}true: {LABEL_NAMES[int(label)]}\npred: {LABEL_NAMES[predicted]} p={probability:.3f}",
            fontsize=8,
            color=colour,
        )
    return _save(figure, path)
