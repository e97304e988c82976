"""Binary classification metrics from labels and predicted P(AI-generated), as JSON-ready data.

AI-generated (label 1) is the positive class throughout. Training writes :func:`binary_metrics`
into ``metrics.json``; evaluation reports :func:`classification_summary` and, for robustness tiers
and cross-filter cells, :func:`accuracy_and_auc`.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics

from aiclassify import LABEL_NAMES


def _as_arrays(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    return labels, probabilities, len(np.unique(labels)) == 2


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict:
    """Loss, accuracy, precision, recall, F1 and ROC-AUC at ``threshold``."""
    labels, probabilities, both_classes = _as_arrays(labels, probabilities)
    predicted = (probabilities >= threshold).astype(int)
    return {
        "examples": int(labels.size),
        "loss": float(metrics.log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(metrics.roc_auc_score(labels, probabilities)) if both_classes else None,
        "threshold": float(threshold),
    }


def classification_summary(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    """:func:`binary_metrics` plus AP, balanced accuracy, log loss, confusion matrix and per-class report."""
    labels, probabilities, both_classes = _as_arrays(labels, probabilities)
    predicted = (probabilities >= threshold).astype(int)
    summary = binary_metrics(labels, probabilities, threshold)
    summary["log_loss"] = summary.pop("loss")
    summary["average_precision"] = (
        float(metrics.average_precision_score(labels, probabilities)) if both_classes else None
    )
    summary["balanced_accuracy"] = (
        float(metrics.balanced_accuracy_score(labels, predicted)) if both_classes else None
    )
    summary["confusion_matrix"] = metrics.confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    summary["classification_report"] = metrics.classification_report(
        labels, predicted, labels=[0, 1], target_names=list(LABEL_NAMES), output_dict=True, zero_division=0
    )
    return summary


def accuracy_and_auc(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    """The short summary used for robustness tiers and cross-filter cells."""
    labels, probabilities, both_classes = _as_arrays(labels, probabilities)
    return {
        "examples": int(labels.size),
        "accuracy": float(metrics.accuracy_score(labels, probabilities >= threshold)),
        "roc_auc": float(metrics.roc_auc_score(labels, probabilities)) if both_classes else None,
    }
