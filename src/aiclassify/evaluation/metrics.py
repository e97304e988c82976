"""The classification summary of one scored set (sklearn), as plain JSON-ready data."""

from __future__ import annotations

import numpy as np
from sklearn import metrics

from aiclassify import LABEL_NAMES
from aiclassify.metrics import binary_metrics


def classification_summary(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    """Accuracy, per-class and macro/weighted precision/recall/F1, ROC-AUC, AP, log loss, confusion.

    AI-generated (label 1) is the positive class of the binary precision, recall, F1 and AP.
    """
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    predicted = (probabilities >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
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
    """The short summary used for robustness tiers."""
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    both_classes = len(np.unique(labels)) == 2
    return {
        "examples": int(labels.size),
        "accuracy": float(metrics.accuracy_score(labels, probabilities >= threshold)),
        "roc_auc": float(metrics.roc_auc_score(labels, probabilities)) if both_classes else None,
    }
