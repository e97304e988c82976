"""Calibration and operating points on synthetic scores (no model, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from aiclassify.calibration import (
    apply_temperature,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    logit,
    reliability_curve,
    sigmoid,
)
from aiclassify.evaluate.operating_points import (
    balanced_threshold,
    choose_operating_points,
    rates,
    threshold_for_fpr,
)


def calibrated_sample(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from their own probabilities: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size)
    probabilities = sigmoid(logits)
    return (rng.random(size) < probabilities).astype(int), probabilities


def test_logit_and_sigmoid_are_inverse():
    p = np.array([1e-4, 0.2, 0.5, 0.9, 1 - 1e-4])
    assert np.allclose(sigmoid(logit(p)), p)
    assert np.allclose(apply_temperature(p, 1.0), p)


@pytest.mark.parametrize("true_temperature", [0.5, 2.0, 4.0])
def test_fit_temperature_recovers_a_known_temperature(true_temperature):
    labels, calibrated = calibrated_sample(40_000, seed=1)
    distorted = sigmoid(logit(calibrated) * true_temperature)  # over- (T>1) or under-confident (T<1)
    fitted = fit_temperature(labels, distorted)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    assert np.allclose(apply_temperature(distorted, fitted), calibrated, atol=0.02)


def test_ece_of_calibrated_data_is_near_zero_and_of_distorted_data_is_not():
    labels, probabilities = calibrated_sample(40_000, seed=2)
    assert expected_calibration_error(labels, probabilities) < 0.01
    assert expected_calibration_error(labels, sigmoid(logit(probabilities) * 3.0)) > 0.05


def test_temperature_scaling_lowers_ece_on_overconfident_scores():
    labels, probabilities = calibrated_sample(20_000, seed=3)
    summary = calibration_summary(labels, sigmoid(logit(probabilities) * 2.5))
    assert summary["fitted_on"] == "validation"
    assert summary["ece_after"] < summary["ece_before"]
    assert summary["ece_after"] < 0.015


def test_reliability_curve_counts_every_example():
    labels, probabilities = calibrated_sample(1000, seed=4)
    curve = reliability_curve(labels, np.append(probabilities[:-1], 1.0), bins=10)
    assert curve.counts.sum() == 1000
    assert len(curve.edges) == 11
    as_json = curve.to_dict()
    assert len(as_json["mean_predicted"]) == 10


@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
def test_operating_point_fpr_is_at_most_the_target(target):
    labels, probabilities = calibrated_sample(5000, seed=5)
    threshold = threshold_for_fpr(labels, probabilities, target)
    measured = rates(labels, probabilities, threshold)
    assert measured["fpr"] <= target
    slightly_lower = rates(labels, probabilities, np.nextafter(threshold, -np.inf))
    assert slightly_lower["fpr"] > target or slightly_lower["tpr"] == measured["tpr"]


def test_balanced_threshold_separates_separable_scores():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    threshold = balanced_threshold(labels, scores)
    assert rates(labels, scores, threshold) == {"fpr": 0.0, "tpr": 1.0}
    assert threshold_for_fpr(labels, scores, 0.0) == pytest.approx(0.6)


def test_operating_points_have_the_metadata_keys():
    labels, probabilities = calibrated_sample(2000, seed=6)
    points = choose_operating_points(labels, probabilities)
    assert [p["name"] for p in points] == ["fpr_1pct", "fpr_5pct", "balanced"]
    assert [p["target_fpr"] for p in points] == [0.01, 0.05, None]
    for point in points:
        assert set(point) == {"name", "target_fpr", "threshold", "fpr", "tpr"}
        assert all(np.isfinite(point[key]) for key in ("threshold", "fpr", "tpr"))
    assert points[0]["tpr"] <= points[1]["tpr"]


def test_operating_points_need_both_classes():
    with pytest.raises(ValueError, match="both"):
        choose_operating_points(np.zeros(5), np.linspace(0, 1, 5))
