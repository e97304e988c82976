"""Operating points (thresholds at a target false-positive rate, the balanced threshold) on synthetic
scores (no model, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest
from builders import calibrated_sample

from aiclassify.evaluate.operating_points import (
    balanced_threshold,
    choose_operating_points,
    rates,
    threshold_for_fpr,
)


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
