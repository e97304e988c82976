"""Calibration: temperature scaling, expected calibration error and reliability curves.

The one home of calibration: evaluation fits the temperature, the predictor applies it.

Everything here works on P(AI-generated) for binary labels (1 = AI-generated). Temperature scaling
divides the model's logit by a single fitted temperature ``T``: ``sigmoid(logit(p) / T)``; ``T > 1``
softens over-confident predictions and never changes their ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

EPSILON = 1e-7
DEFAULT_BINS = 15
MIN_LOG_TEMPERATURE, MAX_LOG_TEMPERATURE = np.log(0.05), np.log(20.0)


def logit(probabilities: np.ndarray) -> np.ndarray:
    """The log-odds of probabilities clipped away from 0 and 1."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return np.log(p) - np.log1p(-p)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function, numerically stable for large magnitudes."""
    z = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities ``sigmoid(logit(p) / temperature)``."""
    return sigmoid(logit(probabilities) / float(temperature))


def calibrate(probabilities: np.ndarray | float, temperature: float) -> np.ndarray | float:
    """``sigmoid(logit(p) / temperature)``, and ``p`` itself (not clipped) when the temperature is 1."""
    if temperature == 1.0:
        return probabilities
    calibrated = apply_temperature(probabilities, temperature)
    return float(calibrated) if np.ndim(probabilities) == 0 else calibrated


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float; ValueError unless it is a positive finite number."""
    value = float(temperature)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"The temperature must be a positive number. Received: temperature={temperature!r}")
    return value


def _nll(labels: np.ndarray, logits: np.ndarray) -> float:
    # -[y log s(z) + (1-y) log(1-s(z))] = log(1 + e^z) - y z
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def fit_temperature(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (bounded 0.05-20)."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    logits = logit(probabilities).ravel()
    if labels.size == 0:
        raise ValueError("Cannot fit a temperature on an empty set.")
    result = minimize_scalar(
        lambda log_t: _nll(labels, logits / np.exp(log_t)),
        bounds=(MIN_LOG_TEMPERATURE, MAX_LOG_TEMPERATURE),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin mean predicted P(AI), observed fraction of AI-generated images, and counts."""

    edges: np.ndarray
    mean_predicted: np.ndarray  # NaN for empty bins
    fraction_positive: np.ndarray  # NaN for empty bins
    counts: np.ndarray

    def to_dict(self) -> dict:
        """Plain lists for JSON (empty bins as null)."""

        def clean(values: np.ndarray) -> list:
            return [None if np.isnan(v) else round(float(v), 6) for v in values]

        return {
            "edges": [round(float(e), 6) for e in self.edges],
            "mean_predicted": clean(self.mean_predicted),
            "fraction_positive": clean(self.fraction_positive),
            "counts": [int(c) for c in self.counts],
        }


def reliability_curve(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = DEFAULT_BINS
) -> ReliabilityCurve:
    """Bin P(AI) into ``bins`` equal-width bins over [0, 1] and compare with observed frequencies."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1], right=False), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=probabilities, minlength=bins)
    positives = np.bincount(index, weights=labels, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.where(counts > 0, sums / counts, np.nan)
        fraction_positive = np.where(counts > 0, positives / counts, np.nan)
    return ReliabilityCurve(edges, mean_predicted, fraction_positive, counts)


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = DEFAULT_BINS
) -> float:
    """ECE: the count-weighted mean gap between mean P(AI) and the AI fraction over equal-width bins."""
    curve = reliability_curve(labels, probabilities, bins)
    filled = curve.counts > 0
    if not filled.any():
        return 0.0
    gaps = np.abs(curve.mean_predicted[filled] - curve.fraction_positive[filled])
    return float(np.sum(gaps * curve.counts[filled]) / np.sum(curve.counts))


def calibration_summary(
    validation_labels: np.ndarray,
    validation_probabilities: np.ndarray,
    bins: int = DEFAULT_BINS,
) -> dict:
    """Fit a temperature on validation and report ECE before and after (the metadata block)."""
    temperature = fit_temperature(validation_labels, validation_probabilities)
    calibrated = apply_temperature(validation_probabilities, temperature)
    return {
        "temperature": temperature,
        "ece_before": expected_calibration_error(validation_labels, validation_probabilities, bins),
        "ece_after": expected_calibration_error(validation_labels, calibrated, bins),
        "fitted_on": "validation",
    }
