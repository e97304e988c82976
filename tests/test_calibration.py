"""Calibration (temperature scaling, ECE, reliability) on synthetic scores (no model, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest
from builders import calibrated_sample

from aiclassify.calibration import (
    apply_temperature,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    logit,
    reliability_curve,
    sigmoid,
)


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
