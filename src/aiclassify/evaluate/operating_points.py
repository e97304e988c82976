"""Decision thresholds chosen on validation: a target false-positive rate, or best balanced accuracy.

"Positive" means AI-generated, so the false-positive rate is the share of real images flagged as
AI-generated. An image is flagged when its (calibrated) probability is ``>= threshold``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

TARGET_FPRS = {"fpr_1pct": 0.01, "fpr_5pct": 0.05}


def rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """False- and true-positive rates when flagging ``scores >= threshold``."""
    labels = np.asarray(labels).astype(int).ravel()
    flagged = np.asarray(scores, dtype=np.float64).ravel() >= threshold
    negatives, positives = labels == 0, labels == 1
    fpr = float(flagged[negatives].mean()) if negatives.any() else float("nan")
    tpr = float(flagged[positives].mean()) if positives.any() else float("nan")
    return {"fpr": fpr, "tpr": tpr}


def _roc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(np.unique(labels)) < 2:
        raise ValueError("Operating points need both real and AI-generated images.")
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    # roc_curve's first threshold is +inf (flag nothing); keep it finite for JSON.
    thresholds = thresholds.copy()
    thresholds[~np.isfinite(thresholds)] = float(np.nextafter(scores.max(), np.inf))
    return fpr, tpr, thresholds


def threshold_for_fpr(labels: np.ndarray, scores: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold whose FPR is at most ``target_fpr`` (the highest TPR within the budget)."""
    fpr, tpr, thresholds = _roc(labels, scores)
    allowed = np.flatnonzero(fpr <= target_fpr)
    best = allowed[np.argmax(tpr[allowed])]  # thresholds decrease, so ties keep the highest threshold
    return float(thresholds[best])


def balanced_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold with the best balanced accuracy (TPR + TNR) / 2, i.e. Youden's J."""
    fpr, tpr, thresholds = _roc(labels, scores)
    return float(thresholds[int(np.argmax(tpr - fpr))])


def choose_operating_points(labels: np.ndarray, scores: np.ndarray) -> list[dict]:
    """The metadata list: FPR 1 %, FPR 5 % and balanced, with FPR/TPR measured on these scores."""
    points = []
    for name, target in TARGET_FPRS.items():
        threshold = threshold_for_fpr(labels, scores, target)
        points.append(
            {"name": name, "target_fpr": target, "threshold": threshold, **rates(labels, scores, threshold)}
        )
    threshold = balanced_threshold(labels, scores)
    points.append(
        {"name": "balanced", "target_fpr": None, "threshold": threshold, **rates(labels, scores, threshold)}
    )
    return points
