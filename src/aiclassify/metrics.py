"""Binary classification metrics from labels and predicted P(AI-generated)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict:
    """Loss, accuracy, precision, recall, F1 (AI-generated is positive) and ROC-AUC."""
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    predicted = (probabilities >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
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
